"""Rule base_training_curve: the base's pretraining curve and where it stopped."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.report.curves import plot_base_training  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    plot_base_training(s.input.metrics, s.input.info, s.params.plateau, s.output[0])
