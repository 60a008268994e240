"""Rule sft_report: the variants after SFT (held-out loss, lm-eval, MLP work skipped, speed) and DLO's
per-layer execution rates."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.report.sft_section import write_sft_report

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    runs = [{"variant": variant, "seed": seed, "info": i, "metrics": m, "eval": e}
            for (variant, seed), i, m, e in zip(s.params.runs, s.input.info, s.input.metrics, s.input.evals)]
    write_sft_report(runs, s.params.expansion, s.output.md, s.output.csv, s.output.png)
