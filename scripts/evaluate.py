"""Rules evaluate and evaluate_sft: lm-eval on one trained model."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.harness import evaluate_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    # the embedded tasks' templates lie beside the workflow, wherever the run's working directory is
    templates_dir = Path(s.scriptdir).parent / "config" / "tasks"
    evaluate_stage(s.input.model, templates_dir, s.input.task_data, dict(s.params.eval), s.output[0],
                   threads=s.threads)
