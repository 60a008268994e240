"""Rule generate_layers: a method's layer plan and new tensors."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.logs import to_log  # noqa: E402
from deepen.pipeline import generate_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    parent = lambda key: Path(s.input[key][0]).parent if key in s.input.keys() else None  # noqa: E731
    generate_stage(s.wildcards.model, dict(s.params.options), s.input.base, parent("weights"),
                   Path(s.output.plan).parent, svd_dir=parent("svd"), predictor_dir=parent("predictor"))
