"""Rule align_base: the base with every layer's heads and neurons re-ordered to match its lower neighbour's."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import align_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    align_stage(s.input.base, s.output[0], device=s.params.device)
