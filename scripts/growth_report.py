"""Rule growth_report: growth curves against FLOPs and the speedup table."""
from pathlib import Path

import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.report.growth_section import write_growth_report

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    scratch = [{"seed": int(Path(m).parent.name.removeprefix("seed")), "metrics": m, "info": i}
               for m, i in zip(s.input.scratch_metrics, s.input.scratch_info)]
    grown = [{"operator": op, "g": g, "d": d, "seed": seed, "metrics": m, "info": i, "small_metrics": sm,
              "small_info": si}
             for (op, g, d, seed), m, i, sm, si in zip(s.params.runs, s.input.metrics, s.input.info,
                                                       s.input.small_metrics, s.input.small_info)]
    write_growth_report(scratch, grown, s.output.png, s.output.md, s.output.csv)
