"""Rule sft_data: instruction examples from the training plays, held-out ones from the test plays."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import sft_data_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    sft_data_stage(s.input.train, s.input.test, Path(s.output.train).parent, dict(s.params.data))
