"""Rule base_training_curve: the base's pretraining curve and where it stopped."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.report.curves import plot_base_training

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    plot_base_training(s.input.metrics, s.input.info, s.params.plateau, s.output[0])
