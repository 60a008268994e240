"""Rule seams: how much each layer of an expanded model changes the residual stream, and what skipping each added
layer costs, before CPT and after it."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.seams import seams_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    trained = dict(zip(s.params.freezes, s.input.trained))
    seams_stage(s.input.model, s.input.plan, trained, s.input.val, dict(s.params.eval), s.output[0], threads=s.threads,
                device=s.params.device)
