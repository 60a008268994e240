"""Rules growth_scratch, growth_small and growth_grown: one training run of the growth comparison (the target from
scratch, the small model, or the small model grown), by the rule's name."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.workflow.design import growth_train
from deepen.train.growth_runs import growth_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    inputs = {name: s.input[name] for name in s.input.keys()}
    train = {**s.params.train, "report_to": growth_train(s.config).get("report_to", "none")}
    growth_stage(s.rule.removeprefix("growth_"), s.params.model, train, s.params.steps, dict(s.wildcards),
                 inputs, s.output.model, Path(s.output.metrics).parent, threads=s.threads)
