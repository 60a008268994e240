"""Rule import_base: a GGUF file as an HF model directory (results/base)."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.models.gguf_import import import_base_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    import_base_stage(s.input.gguf, s.output[0], s.params.dtype, s.params.max_shard_mb)
