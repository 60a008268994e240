"""Rule report: summary tables, markdown, loss curves and the run's panels."""
import workflow_library  # noqa: F401  (the workflow's own deepen/ first on the path)
from deepen.core.logs import to_log
from deepen.report.build import build_report
from deepen.report.panels import split_inputs

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    runs = [{"method": m, "freeze": f, "seed": seed, "metrics": metrics, "info": info, "eval": ev}
            for (m, f, seed), metrics, info, ev in zip(s.params.runs, s.input.metrics, s.input.info, s.input.evals)]
    init = {"paths": dict(zip(s.params.init_models, s.input.init)), "method_models": dict(s.params.method_models),
            "trained": list(s.params.trained)}
    panel_files = split_inputs({name: s.input[name] if isinstance(s.input[name], list) else [s.input[name]]
                                for name in s.input.keys()})
    build_report(runs, s.params.target, s.params.reference, {"base_desc": s.params.base_desc, "cpt": dict(s.params.cpt)},
                 {k: s.output[k] for k in ("csv", "runs_csv", "md", "curves", "init_csv")}, init,
                 claims=[dict(c) for c in s.params.claims], panels={k: dict(v) for k, v in s.params.panels.items()},
                 panel_files=panel_files)
