"""Rule reconstruct: execute a layer plan into an HF model directory."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.reconstruct import reconstruct_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    reconstruct_stage(s.wildcards.model, s.input.base, s.input.tokenizer, s.input.plan, s.input.new_layers,
                      s.output[0], s.params.max_shard_mb, dict(s.params.card))
