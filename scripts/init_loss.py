"""Rule init_loss: a model's val loss on the fixed slice before any training (step 0)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import init_loss_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    init_loss_stage(s.wildcards.model, s.input.model, s.input.val, dict(s.params.eval), s.output[0], threads=s.threads,
                    device=s.params.device)
