"""Rule report: summary tables, markdown and loss curves."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.logs import to_log  # noqa: E402
from deepen.pipeline import report_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    runs = [{"method": m, "freeze": f, "seed": seed, "metrics": metrics, "info": info, "eval": ev}
            for (m, f, seed), metrics, info, ev in zip(s.params.runs, s.input.metrics, s.input.info, s.input.evals)]
    curves = {space: dict(zip(s.params.lesa_matrices, s.input[f"curves_{space}"]))
              for space in ("svd", "nosvd") if f"curves_{space}" in s.input.keys()}
    report_stage(runs, s.params.target, s.params.reference, {"base_desc": s.params.base_desc, "cpt": dict(s.params.cpt)},
                 {k: s.output[k] for k in ("csv", "runs_csv", "md", "curves")},
                 continuity_json=s.input.get("continuity"), predictor_curves=curves, base_info=s.input.get("base_info"),
                 growth_md=s.input.get("growth"), sft_md=s.input.get("sft"))
