"""Rule race_cooldown: the race's winner, its rate decayed over the last steps: its final model."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.race_runs import winner_cooldown_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    winner_cooldown_stage(list(s.input.decisions), s.input.model, s.input.state, s.input.train, s.input.val,
                          dict(s.params.race), dict(s.params.cpt), s.output.final, s.output.info, threads=s.threads)
