"""Rule align_base: the base with every layer's heads and neurons re-ordered to match its lower neighbour's."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.align import align_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    align_stage(s.input.base, s.output[0], device=s.params.device)
