"""Rule svd_continuity: do neighbouring layers lie close together in SVD space?"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import continuity_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    continuity_stage(dict(zip(s.params.matrices, s.input.svd)), s.output.png, s.output.ratios)
