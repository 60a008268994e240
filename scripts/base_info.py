"""Rule base_info: what was imported, and the imported base's perplexity on the fixed val slice."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.step0 import base_info_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    base_info_stage(s.input.base, s.input.init, s.output[0])
