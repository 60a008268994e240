"""The report's figures of training: the loss curves of every row over CPT steps and over training FLOPs, and the
base model's own pretraining curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

from deepen.core.atomic import atomic_path
from deepen.core.stats import Interval, t_interval
from deepen.report.rows import BASE_METHOD, flops_per_step
from deepen.train.metrics import read_metrics


def _mean_curve(row: dict) -> tuple[list[int], list[Interval]]:
    """Mean val loss over seeds at each logged step all seeds share."""
    per_seed = [{m["step"]: m["val_loss"] for m in r["metrics"]} for r in row["seeds"].values()]
    steps = sorted(set.intersection(*(set(p) for p in per_seed)))
    return steps, [t_interval(p[s] for p in per_seed) for s in steps]


def plot_loss_curves(rows: dict[str, dict], target_loss: float, path) -> None:
    """Mean val loss over seeds (band: 95% interval) against CPT steps and against training FLOPs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 6), sharey=True)
    palette = plt.cm.tab10.colors
    methods = list(dict.fromkeys(r["method"] for r in rows.values() if r["method"] != BASE_METHOD))
    lows, highs = [], []
    for name, row in rows.items():
        steps, curve = _mean_curve(row)
        mean = [c.mean for c in curve]
        lo = [c.low if not math.isnan(c.half_width) else c.mean for c in curve]
        hi = [c.high if not math.isnan(c.half_width) else c.mean for c in curve]
        per_step = flops_per_step(row["info"])
        if row["method"] == BASE_METHOD:
            style = {"color": "black", "linewidth": 2, "linestyle": "-"}
        else:
            i = methods.index(row["method"])
            # colour: method (ten colours, then markers tell them apart); line style: freeze policy
            style = {"color": palette[i % 10], "marker": ".o^s"[(i // 10) % 4], "markersize": 4,
                     "linestyle": "-" if row["freeze"] == "all" else "--"}
        for ax, xs in ((axes[0], steps), (axes[1], [s * per_step for s in steps])):
            ax.plot(xs, mean, label=name, **style)
            if len(row["seeds"]) > 1:
                ax.fill_between(xs, lo, hi, color=style["color"], alpha=0.12, linewidth=0)
        lows.append(min(mean[1:] or mean))
        highs.append(mean[-1])
        if row["method"] == BASE_METHOD:
            highs.append(mean[0])
    for ax in axes:
        ax.axhline(target_loss, color="red", linestyle=":", linewidth=1, label=f"target {target_loss:.3f}")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("CPT step")
    axes[1].set_xlabel("training FLOPs (forward + backward of what trains)")
    # Linear, not log: every curve starts at 0 FLOPs, and equal horizontal distances are equal cost.
    axes[1].set_xlim(left=0)
    axes[0].set_ylabel("validation loss (nats/token), mean over seeds")
    # Keep the interesting range visible: a random-init start can be far above everything else.
    lo, hi = min(lows), max(highs)
    span = max(hi - lo, 1e-3)
    axes[0].set_ylim(lo - 0.1 * span, hi + 0.6 * span)
    axes[1].legend(fontsize=7, ncol=2, loc="upper right")
    fig.suptitle("Continual pretraining of the up-scaled models (solid: all parameters train; dashed: only the "
                 "added layers; band: 95% interval over seeds)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip("."))
    plt.close(fig)


def plot_base_training(metrics_path, info_path, plateau: dict | None, path) -> None:
    """The base's pretraining curve, with where and why it stopped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = read_metrics(metrics_path)
    info = json.loads(Path(info_path).read_text())
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot([x["step"] for x in m], [x["val_loss"] for x in m], marker=".", color="black", label="val loss")
    logged = [x for x in m if x["train_loss"] is not None]
    ax.plot([x["step"] for x in logged], [x["train_loss"] for x in logged], color="gray", alpha=0.7,
            label="train loss (mean since the previous evaluation)")
    stop = info["steps"]
    why = (f"plateau: best of the last {plateau['window']} evaluations improved by "
           f"< {plateau['min_rel_improvement']:.2%}" if info.get("stopped_on_plateau") else
           f"budget of {info.get('max_steps', stop)} steps")
    ax.axvline(stop, color="red", linestyle="--", label=f"stopped at step {stop} ({why})")
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_yscale("log")
    ax.set_title("Base model pretraining")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip("."))
    plt.close(fig)
