"""Rule report: summary table, markdown and loss curves."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821


from deepen.logs import to_log  # noqa: E402
from deepen.pipeline import report_stage  # noqa: E402

s = snakemake  # noqa: F821
with to_log(s.log[0]):
    rows = {row: {"metrics": m, "info": i, "eval": e}
            for row, m, i, e in zip(s.params.rows, s.input.metrics, s.input.info, s.input.evals)}
    curves = {space: dict(zip(s.params.lesa_matrices, s.input[f"curves_{space}"]))
              for space in ("svd", "nosvd") if f"curves_{space}" in s.input.keys()}
    report_stage(rows, s.params.target, {"base_desc": s.params.base_desc, "cpt": dict(s.params.cpt)},
                 s.output.csv, s.output.md, s.output.curves,
                 continuity_json=s.input.get("continuity"), predictor_curves=curves)
