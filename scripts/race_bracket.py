"""Rule race_bracket: what the race ran, its winner, and its cost against training every candidate to the end."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.race_runs import bracket_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    bracket_stage(list(s.input.decisions), s.input.cooldown, dict(s.params.race), dict(s.params.cpt),
                  list(s.params.candidates), s.output.bracket)
