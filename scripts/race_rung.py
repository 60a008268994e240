"""Rule race_rung: one rung of one race candidate, from its expanded model or its previous rung's checkpoint."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.race_runs import rung_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    candidate = f"{s.wildcards.method}/{s.wildcards.freeze}"
    rung_stage(candidate, s.input.model, s.input.train, s.input.val, dict(s.params.cpt), Path(s.output.info).parent,
               s.output.info, s.output.state, previous_state=s.input.get("previous"), threads=s.threads)
