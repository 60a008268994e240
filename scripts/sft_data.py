"""Rule sft_data: instruction examples from the training plays, held-out ones from the test plays."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.train.sft_runs import sft_data_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    sft_data_stage(s.input.train, s.input.test, Path(s.output.train).parent, dict(s.params.data))
