"""Rule predictor: LESA's layer predictor, one per matrix type, on the SVD blocks or on raw weight rows."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import predictor_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    for blocks, model, curve in zip(s.input.blocks, s.output.models, s.output.curves):
        print(f"== {Path(blocks).stem}", flush=True)
        predictor_stage(blocks, s.params.key, dict(s.params.train), model, curve, threads=s.threads,
                        device=s.params.device)
