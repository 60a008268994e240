"""Rules predictor and predictor_nosvd: LESA's layer predictor for one matrix type."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from deepen.logs import to_log  # noqa: E402
from deepen.pipeline import predictor_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    predictor_stage(s.input.blocks, s.params.key, dict(s.params.train), s.output.model, s.output.curve,
                    threads=s.threads)
