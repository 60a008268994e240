"""Rule race_decide: after a rung, which candidates continue (or the winner)."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.race_runs import decide_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    decide_stage(int(s.wildcards.rung), list(s.input), dict(s.params.race), s.output.decision)
