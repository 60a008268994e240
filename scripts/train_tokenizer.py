"""Rule tokenizer: byte-level BPE on the training split."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.data.tokenizer import tokenizer_stage

with to_log(snakemake.log[0]):  # noqa: F821
    tokenizer_stage(snakemake.input.train, snakemake.params.vocab_size, snakemake.output[0])  # noqa: F821
