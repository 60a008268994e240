"""Rule import_base: a GGUF file as an HF model directory (results/base)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import import_base_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    import_base_stage(s.input.gguf, s.output[0], s.params.dtype, s.params.max_shard_mb)
