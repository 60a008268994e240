"""Rule sft: supervised fine-tuning of one variant (dense, or DLO over the dense expansion)."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.sft_runs import sft_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    train = {**s.params.train, "report_to": s.config["sft"].get("train", {}).get("report_to", "none")}
    sft_stage(s.wildcards.variant, s.input.model, Path(s.input.data).parent, train,
              dict(s.params.dlo) if s.params.dlo else None, int(s.wildcards.seed), Path(s.output.metrics).parent,
              s.output.final, s.output.info, threads=s.threads)
