"""Rule tokenizer: byte-level BPE on the training split."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import tokenizer_stage  # noqa: E402

with to_log(snakemake.log[0]):  # noqa: F821
    tokenizer_stage(snakemake.input.train, snakemake.params.vocab_size, snakemake.output[0])  # noqa: F821
