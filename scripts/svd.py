"""Rule svd: LESA's streaming SVD of one matrix type."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.lesa.svd import svd_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    svd_stage(s.input.weights, s.output.svd, s.output.report, device=s.params.device)
