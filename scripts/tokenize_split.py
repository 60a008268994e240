"""Rule tokens: one split tokenized once into a token file."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.data.tokens import write_token_file

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    write_token_file(s.input.text, s.input.tokenizer, s.output.tokens, s.output.info, workers=s.threads,
                     max_tokens=s.params.max_tokens, seed=s.params.seed)
