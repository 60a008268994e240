"""Rule continual_pretrain: the same token budget for every row."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.cpt import cpt_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    train = {**s.params.cpt, "report_to": s.config["cpt"].get("report_to", "none")}
    cpt_stage(s.wildcards.method, s.input.model, s.input.train, s.input.val, train, Path(s.output.metrics).parent,
              s.output.final, s.output.info, threads=s.threads)
