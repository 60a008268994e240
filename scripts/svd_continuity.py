"""Rule svd_continuity: do neighbouring layers lie close together in SVD space?"""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.lesa.continuity import continuity_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    continuity_stage(dict(zip(s.params.matrices, s.input.svd)), s.output.png, s.output.ratios)
