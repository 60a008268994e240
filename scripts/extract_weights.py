"""Rule extract_weights: every matrix type stacked over layers, one file each."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import extract_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    for matrix, out in zip(s.params.matrices, s.output):
        extract_stage(s.input.base, matrix, out)
