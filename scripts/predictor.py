"""Rule predictor: LESA's layer predictor, one per matrix type, on the SVD blocks or on raw weight rows."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.expand.lesa.predictor import predictor_stage

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    for blocks, model, curve in zip(s.input.blocks, s.output.models, s.output.curves):
        print(f"== {Path(blocks).stem}", flush=True)
        predictor_stage(blocks, s.params.key, dict(s.params.train), model, curve, threads=s.threads,
                        device=s.params.device)
