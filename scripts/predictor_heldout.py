"""Rule predictor_heldout: leave-one-out fits of LESA's predictor, per matrix type."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.lesa.predictor import predictor_heldout_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    for blocks, fits in zip(s.input.blocks, s.output.fits):
        print(f"== {Path(blocks).stem}", flush=True)
        predictor_heldout_stage(blocks, s.params.key, dict(s.params.train), s.params.layers, fits, threads=s.threads,
                                device=s.params.device)
