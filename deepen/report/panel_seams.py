"""The seams panel (rule seams, deepen/evaluate/seams.py): per expanded model, how much each layer changes the residual
stream and what skipping each added layer costs, before and after CPT. A table in summary.md (added layers
summarised per model), every layer in seams.csv, and seams.png."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from deepen.core.paths import result_path
from deepen.core.atomic import atomic_path
from deepen.report.panels import panel, save_figure


def seam_files(facts):
    models = facts.first_seed_models
    return {"seams": [result_path("seams", "seams", model=model) for model in models]} if models else None


def _stages(record: dict) -> list[tuple[str, dict]]:
    """("before CPT", …) and ("after CPT (<freeze>)", …) of one model's record."""
    return [("before CPT", record["before"])] + [(f"after CPT ({f})", r) for f, r in record["after"].items()]


def _summary(result: dict) -> tuple[str, str, str]:
    added = [layer for layer in result["layers"] if layer["added"]]
    if not added:  # SOLAR and stacking repeat base layers: their plans add none
        return "no added layer: base layers repeated", "", ""
    mean_cos = sum(layer["cosine"] for layer in added) / len(added)
    deltas = [layer["skip_loss_delta"] for layer in added]
    top = max(added, key=lambda layer: layer["skip_loss_delta"])
    return (f"{mean_cos:.4f}", f"{sum(deltas) / len(deltas):+.4f}",
            f"{top['skip_loss_delta']:+.4f} (layer {top['position']})")


DASHES = ["-", "--", ":", "-."]


def line_styles(models: list[str], palette) -> tuple[dict, dict]:
    """One colour per model, the same in both panels, and the index of its first dash: past the palette's length
    a colour comes back with the next dash, so no two models share a line. A model's second freeze after CPT
    takes the dash after its own."""
    colour = {model: palette[i % len(palette)] for i, model in enumerate(models)}
    dash = {model: i // len(palette) for i, model in enumerate(models)}
    return colour, dash


def plot_seams(records: dict[str, dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["before CPT", "after CPT"]
    colour, dash = line_styles(list(records), plt.get_cmap("tab20").colors)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, stage in zip(axes, stages):
        for model, record in records.items():
            for k, (label, result) in enumerate(r for r in _stages(record) if r[0].startswith(stage)):
                xs = [layer["position"] for layer in result["layers"]]
                ys = [layer["cosine"] for layer in result["layers"]]
                name = model if stage == "before CPT" else f"{model} {label.removeprefix('after CPT ')}"
                line, = ax.plot(xs, ys, DASHES[(dash[model] + k) % len(DASHES)], color=colour[model], lw=1.2,
                                label=name)
                added = [(x, y) for x, y, layer in zip(xs, ys, result["layers"]) if layer["added"]]
                if added:
                    ax.plot(*zip(*added), "o", color=line.get_color(), ms=6, mfc="white")
        ax.set_title(f"{stage} (open circles: added layers)", fontsize=10)
        ax.set_xlabel("layer of the expanded model")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2)
    axes[0].set_ylabel("cos(hidden state in, hidden state out)")
    fig.suptitle("How much each layer changes the residual stream (1: it passes the stream on unchanged)", fontsize=11)
    save_figure(fig, path)


@panel("seams", seam_files, writes=("seams.png", "seams.csv"))
def seams_panel(inputs, params, view) -> list[str]:
    prefix, suffix = result_path("seams", "seams").split("{model}")
    records = {p.split(prefix, 1)[-1].removesuffix(suffix): json.loads(Path(p).read_text()) for p in inputs["seams"]}
    plot_seams(records, view.out_dir / "seams.png")
    with atomic_path(view.out_dir / "seams.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "stage", "position", "added", "base_layer", "cosine", "skip_loss_delta"])
        for model, record in records.items():
            for label, result in _stages(record):
                for layer in result["layers"]:
                    w.writerow([model, label, layer["position"], layer["added"], layer.get("base_layer", ""),
                                f"{layer['cosine']:.6f}", f"{layer['skip_loss_delta']:.6f}" if layer["added"] else ""])
    lines = ["## Seams: what the added layers do", "",
             "On the fixed val slice, per expanded model: `cos`, the mean cosine similarity of the hidden state "
             "entering and leaving each added layer (1: the layer passes the residual stream on unchanged, as a "
             "zero-initialised block does at step 0); `skip Δ`, the val-loss change when that added layer alone is "
             "skipped (0: the model does not use it; above 0: the rest relies on it; below 0: it hurts). Each "
             "method's first seed; after CPT once per freeze policy it trained under. Every layer: `seams.csv`.", "",
             "| model | stage | val loss | added layers' mean cos | mean skip Δ | largest skip Δ |",
             "|---|---|---|---|---|---|"]
    for model, record in records.items():
        for label, result in _stages(record):
            cos, mean_delta, top = _summary(result)
            lines.append(f"| {model} | {label} | {result['val_loss']:.4f} | {cos} | {mean_delta} | {top} |")
    return lines + ["", "![seams](seams.png)", ""]
