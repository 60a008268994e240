"""Rules evaluate and evaluate_sft: lm-eval on one trained model."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import evaluate_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    # the embedded tasks' templates lie beside the workflow, wherever the run's working directory is
    templates_dir = Path(s.scriptdir).parent / "config" / "tasks"
    evaluate_stage(s.input.model, templates_dir, s.input.task_data, dict(s.params.eval), s.output[0],
                   threads=s.threads)
