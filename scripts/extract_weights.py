"""Rule extract_weights: every matrix type stacked over layers, one file each."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.weights import extract_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    for matrix, out in zip(s.params.matrices, s.output):
        extract_stage(s.input.base, matrix, out)
