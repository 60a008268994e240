"""Rule layer_profile: how much each layer of the base changes the residual stream, and what skipping it costs."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.seams import layer_profile_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    layer_profile_stage(s.input.model, s.input.val, dict(s.params.eval), s.output[0], threads=s.threads,
                        device=s.params.device)
