"""The report job: every CPT run's metrics, evaluations and info, and every model's step-0 loss, into summary.csv,
runs.csv, init.csv, loss_curves.png and summary.md (the generated paragraph, the claims' verdicts, the table of
rows, the step-0 table, then the run's panels). Imports no torch."""

from __future__ import annotations

from pathlib import Path

from deepen.report.claims import check_claims
from deepen.report.curves import plot_loss_curves
from deepen.report.panels import ReportView, render_panels
from deepen.report.rows import finals, load_runs, summarise, write_csv, write_runs_csv
from deepen.report.step0 import init_section, init_table, load_init_losses, losses_by_method, write_init_csv
from deepen.report.summary import write_markdown


def step0_sentence(step0: list[dict], base_loss: float) -> str:
    best = next(r for r in step0 if r["method"] != "base")
    return (f"At step 0 (no training; {len(step0) - 1} methods), the lowest loss is `{best['method']}`'s "
            f"({best['init_val_loss'].format()}, {best['minus_base']:+.4f} against the base's {base_loss:.4f}); "
            f"the highest is `{step0[-1]['method']}`'s ({step0[-1]['minus_base']:+.4f}).")


def build_report(runs: list[dict], target, reference: str, settings: dict, out: dict, init: dict,
                 claims: list[dict] | None = None, panels: dict[str, dict] | None = None,
                 panel_files: dict[str, dict[str, list[str]]] | None = None) -> None:
    """``runs``: {method, freeze, seed, metrics, info, eval} per CPT run (the base's own CPT is method 'base');
    ``out``: paths of csv, runs_csv, md, curves, init_csv; ``init``: {paths: {model: results/init json},
    method_models: {method: [model, …]}, trained: [method, …]}; ``claims``: report.claims of the config;
    ``panels``: {panel: its settings} of the run's panels, in order; ``panel_files``: {panel: {name: [paths]}}."""
    rows = load_runs(runs)
    table, target_loss = summarise(rows, target, reference)
    first = next(iter(rows.values()))["info"]
    expanded = max(rows.values(), key=lambda r: r["info"]["params"])["info"]
    settings = {**settings, "val_tokens": first["val_tokens"], "seeds": max(len(r["seeds"]) for r in rows.values()),
                "min_seeds": min(len(r["seeds"]) for r in rows.values()),
                "model_size": f"{expanded['params'] / 1e6:.1f} M-parameter"}
    models = load_init_losses(init["paths"])
    step0 = init_table(models, init["method_models"], init["trained"])
    says = [step0_sentence(step0, models["base"]["val_loss"]), ""]
    verdicts = check_claims(claims or [], losses_by_method(models, init["method_models"]),
                            {(r["method"], r["freeze"]): finals(r) for r in rows.values()},
                            {(r["method"], r["freeze"]): {s: x["metrics"] for s, x in r["seeds"].items()}
                             for r in rows.values()},
                            settings["cpt"]["steps"], target_loss,
                            f"the mean final loss of `{target}`" if isinstance(target, str) else "the target")
    if verdicts:
        says += ["The papers' claims, checked on this run (deepen/report/claims.py says how):", "",
                 *(f"- {v.sentence()}" for v in verdicts), ""]
    view = ReportView(rows, table, settings, Path(out["md"]).parent)
    view.out_dir.mkdir(parents=True, exist_ok=True)  # a panel may write its figure there
    sections = init_section(step0) + render_panels(panels or {}, panel_files or {}, view)
    write_csv(table, out["csv"])
    write_runs_csv(rows, out["runs_csv"])
    write_init_csv(step0, out["init_csv"])
    plot_loss_curves(rows, target_loss, out["curves"])
    write_markdown(table, rows, target_loss, target, reference, settings, out["md"], sections, says)
