"""Rule task_data: the offline lm-eval task data from the test plays."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.embedded_tasks import tasks_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    tasks_stage(s.input.test, s.output[0], dict(s.params.eval))
