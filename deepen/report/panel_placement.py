"""The placement panel, present when a method places its new layers from data (``placement: {auto: N}``): the
base's layer profile (rule layer_profile) and the seams each such method chose, as a table and placement.png."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.core.paths import result_path
from deepen.expand import plan as plans
from deepen.report.panels import panel, save_figure

def auto_methods(config: dict) -> list[str]:
    return [m for m, opts in config.get("methods", {}).items() if plans.is_auto(opts.get("placement"))]


def placement_files(facts):
    methods = auto_methods(facts.config)
    if not methods:
        return None
    first = {m.partition("/")[0]: m for m in facts.first_seed_models}
    return {"profile": result_path("layer_profile", "profile"),
            "plans": [result_path("generate_layers", "plan", model=first[m]) for m in methods]}


def plot_profile(profile: list[dict], chosen: dict[str, dict], path) -> None:
    """The base's two measures per layer, each auto method's seams marked between the layers they join."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [row["layer"] for row in profile]
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    measures = [("cosine", "cos(input, output)"), ("skip_loss_delta", "val loss rise when skipped")]
    for ax, (key, label) in zip(axes, measures):
        ax.plot(layers, [row[key] for row in profile], "o-", color="0.3", lw=1.2, ms=4)
        ax.set_ylabel(label)
        ax.set_xticks(layers if len(layers) <= 32 else layers[::2])
        ax.grid(alpha=0.3)
    colours = plt.get_cmap("tab10").colors
    for i, (method, placed) in enumerate(chosen.items()):
        on = axes[0] if placed["by"] == "cosine" else axes[1]
        for k, seam in enumerate(placed["seams"]):
            on.axvline(seam + 0.5, color=colours[i % len(colours)], lw=1.5, alpha=0.6,
                       ymax=1 - 0.06 * i, label=f"{method} (by {placed['by']})" if k == 0 else None)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[1].set_xlabel("base layer (vertical lines: the seams where a method inserted a layer)")
    fig.suptitle("The base's layer profile on the val slice, and where `auto` placed the new layers", fontsize=11)
    save_figure(fig, path)


@panel("placement", placement_files, writes=("placement.png",))
def placement_panel(inputs, params, view) -> list[str]:
    profile = json.loads(Path(inputs["profile"][0]).read_text())["layers"]
    chosen = {}
    for path in inputs["plans"]:
        saved = json.loads(Path(path).read_text())
        chosen[saved["method"]] = saved["placement"]
    plot_profile(profile, chosen, view.out_dir / "placement.png")
    lines = ["## Placement from data", "",
             "Methods with `placement: {auto: N}` insert their N new layers at the seams whose two base layers change "
             "the model least, measured once on the base on the val slice: by `cosine` (of a layer's input and output "
             "hidden states; near 1, the layer passes the stream on nearly unchanged) or by `skip_loss` (the val-loss "
             "rise when that layer alone is skipped). A seam i sits between base layers i and i+1 and scores the mean "
             "of the two.", "",
             "| method | by | new layers | seams chosen (after base layer) |", "|---|---|---|---|"]
    for method, placed in chosen.items():
        lines.append(f"| {method} | {placed['by']} | {placed['auto']} | {', '.join(map(str, placed['seams']))} |")
    lines += ["", "| base layer | cosine | skip Δ |", "|---|---|---|"]
    lines += [f"| {row['layer']} | {row['cosine']:.4f} | {row['skip_loss_delta']:+.4f} |" for row in profile]
    return lines + ["", "![placement](placement.png)", ""]
