"""Rule predictor_heldout: leave-one-out fits of LESA's predictor, per matrix type."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import predictor_heldout_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    for blocks, fits in zip(s.input.blocks, s.output.fits):
        print(f"== {Path(blocks).stem}", flush=True)
        predictor_heldout_stage(blocks, s.params.key, dict(s.params.train), s.params.layers, fits, threads=s.threads,
                                device=s.params.device)
