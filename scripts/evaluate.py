"""Rule evaluate: lm-eval on one continued-pretrained model."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.logs import to_log  # noqa: E402
from deepen.pipeline import evaluate_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    evaluate_stage(s.input.model, Path(s.input.templates[0]).parent, s.input.task_data, list(s.params.tasks),
                   s.params.batch_size, s.output[0], threads=s.threads)
