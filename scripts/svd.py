"""Rule svd: LESA's streaming SVD of one matrix type."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import svd_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    svd_stage(s.input.weights, s.output.svd, s.output.report, device=s.params.device)
