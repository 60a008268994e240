"""Rule task_data: the offline lm-eval task data from the test plays, and where the registered tasks' items come
from."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.embedded_tasks import tasks_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    # the embedded tasks' templates lie beside the workflow, wherever the run's working directory is
    tasks_stage(s.input.test, s.output[0], dict(s.params.eval), Path(s.scriptdir).parent / "config" / "tasks",
                s.input.tokenizer, s.params.window)
