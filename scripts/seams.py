"""Rule seams: how much each layer of an expanded model changes the residual stream, and what skipping each added
layer costs, before CPT and after it."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import seams_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    trained = dict(zip(s.params.freezes, s.input.trained))
    seams_stage(s.input.model, s.input.plan, trained, s.input.val, dict(s.params.eval), s.output[0], threads=s.threads,
                device=s.params.device)
