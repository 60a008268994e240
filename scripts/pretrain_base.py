"""Rule pretrain_base: the tiny Llama of the embedded default."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.pretrain import pretrain_base_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    train = {**s.params.train, "report_to": s.config["base"]["train"].get("report_to", "none")}
    pretrain_base_stage(s.params.model, train, s.params.seed, s.input.tokenizer, s.input.train, s.input.val,
                        s.output.model, Path(s.output.metrics).parent, threads=s.threads)
