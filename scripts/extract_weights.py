"""Rule extract_weights: one matrix type stacked over layers."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.logs import to_log  # noqa: E402
from deepen.pipeline import extract_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    extract_stage(s.input.base, s.params.matrix, s.output[0])
