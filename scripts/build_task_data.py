"""Rule task_data: the offline lm-eval task data from the test plays."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import tasks_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    tasks_stage(s.input.test, s.output[0], dict(s.params.eval))
