"""Rule tokens: one split tokenized once into a token file."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import tokens_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    tokens_stage(s.input.text, s.input.tokenizer, s.output.tokens, s.output.info, s.params.max_tokens, s.params.seed,
                 workers=s.threads)
