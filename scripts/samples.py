"""Rule samples: fixed prompts answered greedily by the models of one stage (step 0, or after CPT)."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.evaluate.samples import samples_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    samples_stage(list(s.params.names), list(s.input.models), dict(s.params.settings), s.output[0],
                  threads=s.threads, device=s.params.device)
