"""Rule init_loss: a model's val loss on the fixed slice before any training (step 0)."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.step0 import init_loss_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    init_loss_stage(s.wildcards.model, s.input.model, s.input.val, dict(s.params.eval), s.output[0], threads=s.threads,
                    device=s.params.device)
