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
    heldout = {space: dict(zip(s.params.lesa_matrices, s.input[f"heldout_{space}"]))
               for space in ("svd", "nosvd") if f"heldout_{space}" in s.input.keys()}
    init = {"paths": dict(zip(s.params.init_models, s.input.init)), "method_models": dict(s.params.method_models),
            "trained": list(s.params.trained)}
    report_stage(runs, s.params.target, s.params.reference, {"base_desc": s.params.base_desc, "cpt": dict(s.params.cpt)},
                 {k: s.output[k] for k in ("csv", "runs_csv", "md", "curves", "init_csv")}, init,
                 claims=[dict(c) for c in s.params.claims], continuity_json=s.input.get("continuity"),
                 heldout=heldout, base_info=s.input.get("base_info"), base_import=s.input.get("base_import"),
                 growth_md=s.input.get("growth"), sft_md=s.input.get("sft"), standard_tasks=list(s.params.standard_tasks))
