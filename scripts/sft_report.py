"""Rule sft_report: the variants after SFT (held-out loss, lm-eval, MLP work skipped, speed) and DLO's
per-layer execution rates."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.core.logs import to_log  # noqa: E402
from deepen.workflow.stages import sft_report_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    runs = [{"variant": variant, "seed": seed, "info": i, "metrics": m, "eval": e}
            for (variant, seed), i, m, e in zip(s.params.runs, s.input.info, s.input.metrics, s.input.evals)]
    sft_report_stage(runs, s.params.expansion, s.output.md, s.output.csv, s.output.png)
