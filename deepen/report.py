"""The report: one row per method (and the base), loss curves, and a markdown summary."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .tasks import flat_metrics
from .train import read_metrics, steps_to_reach

BASE_ROW = "base"
COLUMNS = ["method", "generator", "freeze", "layers", "params", "trainable_params", "init_val_loss",
           "final_val_loss", "steps_to_reach_target", "cpt_seconds"]
# lm-eval metrics shown in the markdown table (all of them go to the csv)
HEADLINE_METRICS = ["deepen_ppl/bits_per_byte", "deepen_cloze/acc", "deepen_next_line/acc"]


def resolve_target(target, finals: dict[str, float]) -> float:
    """The target loss: a number, or the name of a row whose final val loss is the target."""
    if isinstance(target, (int, float)):
        return float(target)
    if target not in finals:
        raise ValueError(f"report.target_loss names {target!r}, which is not a row: {sorted(finals)}")
    return finals[target]


def build_rows(runs: dict[str, dict], target) -> tuple[list[dict], float]:
    """``runs[name]`` holds ``metrics`` (path), ``eval`` (path), ``info`` (path to train info json)."""
    metrics = {name: read_metrics(r["metrics"]) for name, r in runs.items()}
    finals = {name: m[-1]["val_loss"] for name, m in metrics.items()}
    target_loss = resolve_target(target, finals)
    rows = []
    for name, r in runs.items():
        info = json.loads(Path(r["info"]).read_text())
        m = metrics[name]
        reached = steps_to_reach(m, target_loss)
        row = {
            "method": name,
            "generator": info.get("generator", ""),
            "freeze": info["freeze"],
            "layers": info["layers"],
            "params": info["params"],
            "trainable_params": info["trainable_params"],
            "init_val_loss": round(m[0]["val_loss"], 5),
            "final_val_loss": round(m[-1]["val_loss"], 5),
            "steps_to_reach_target": "" if reached is None else reached,
            "cpt_seconds": round(m[-1]["seconds"], 1),
        }
        row.update({k: round(v, 5) for k, v in flat_metrics(json.loads(Path(r["eval"]).read_text())).items()
                    if not k.endswith("sample_len")})
        rows.append(row)
    return rows, target_loss


def write_csv(rows: list[dict], path) -> None:
    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + extra)
        writer.writeheader()
        writer.writerows(rows)


def plot_loss_curves(runs: dict[str, dict], target_loss: float, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    base_init = None
    palette = plt.cm.tab10.colors
    for i, (name, r) in enumerate(runs.items()):
        m = read_metrics(r["metrics"])
        # ten colours; once they repeat, the line style changes
        style = {"color": palette[i % 10], "linestyle": ("-", "--", ":")[(i // 10) % 3]}
        if name == BASE_ROW:
            style = {"color": "black", "linewidth": 2}
        ax.plot([x["step"] for x in m], [x["val_loss"] for x in m], marker=".", label=name, **style)
        if name == BASE_ROW:
            base_init = m[0]["val_loss"]
    if base_init is not None:
        ax.axhline(base_init, color="gray", linestyle="--", linewidth=1, label="base model before CPT")
    ax.axhline(target_loss, color="red", linestyle=":", linewidth=1, label=f"target {target_loss:.3f}")
    ax.set_xlabel("CPT step")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("Continual pretraining of the up-scaled models")
    finals = [read_metrics(r["metrics"])[-1]["val_loss"] for r in runs.values()]
    inits = [read_metrics(r["metrics"])[0]["val_loss"] for r in runs.values()]
    # Keep the interesting range visible: a random-init start can be far above everything else.
    lo, hi = min(finals), max(max(finals), base_init or 0)
    span = max(hi - lo, 1e-3)
    ax.set_ylim(lo - 0.15 * span, min(max(inits), hi + 1.5 * span))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v, column: str = "") -> str:
    if column.endswith("seconds") and isinstance(v, (int, float)):
        return f"{v:.0f}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.4g}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v / 1e6:.2f} M"
    return str(v)


def write_markdown(rows: list[dict], target_loss: float, target, settings: dict, path,
                   sections: list[str] | None = None) -> None:
    cols = COLUMNS[:] + [m for m in HEADLINE_METRICS if any(m in r for r in rows)]
    lines = [
        "# deepen: depth up-scaling comparison",
        "",
        f"Base model: {settings['base_desc']}. Every row continues pretraining for the same budget: "
        f"{settings['cpt']['steps']} steps of {settings['cpt']['batch_size']} x {settings['cpt']['seq_len']} tokens, "
        f"peak lr {settings['cpt']['lr']}. "
        f"`freeze` says what trained: `new_only` = only the inserted layers, `all` = every parameter.",
        "",
        f"Target loss for `steps_to_reach_target`: {target_loss:.4f} "
        f"({'final val loss of ' + target if isinstance(target, str) else 'set in the config'}); "
        "empty = never reached.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in sorted(rows, key=lambda r: r["final_val_loss"]):
        lines.append("| " + " | ".join(_fmt(r.get(c, ""), c) for c in cols) + " |")
    lines += [
        "",
        "Rows are sorted by final validation loss. Losses are nats per token on a fixed validation set of "
        f"{settings['val_tokens']} tokens from held-out plays; lm-eval metrics are on the held-out test plays "
        "(bits_per_byte: lower is better; acc: higher is better).",
        "",
        "One seed per row: differences of a few hundredths of a nat are within run-to-run noise at this "
        "scale, and a model of a few million parameters cannot settle what the papers measure at 1-8 B.",
        "",
        "![loss curves](loss_curves.png)",
        "",
        *(sections or []),
    ]
    Path(path).write_text("\n".join(lines))


def continuity(svd_path, top_rows: int = 32):
    """Each layer's block V_l (its ``top_rows`` leading singular directions) as one point; return the
    2-D PCA of the points and mean consecutive distance / mean distance over all layer pairs."""
    import torch

    from .tensorio import CheckpointReader

    v = CheckpointReader(svd_path).get_slice("V")
    layers, rows, _ = v.get_shape()
    k = min(top_rows, rows)
    x = torch.stack([v[l : l + 1, :k][0].reshape(-1) for l in range(layers)]).double()
    dist = torch.cdist(x, x)
    consecutive = torch.diagonal(dist, 1).mean().item()
    pairs = dist[torch.triu(torch.ones(layers, layers, dtype=torch.bool), 1)].mean().item()
    centred = x - x.mean(0)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    points = (centred @ vt[:2].T).numpy()
    return points, consecutive / pairs


def plot_continuity(svd_paths: dict[str, str], path) -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = {}
    fig, axes = plt.subplots(1, len(svd_paths), figsize=(max(7, 5.5 * len(svd_paths)), 5), squeeze=False)
    for ax, (matrix, svd_path) in zip(axes[0], svd_paths.items()):
        points, ratios[matrix] = continuity(svd_path)
        ax.plot(points[:, 0], points[:, 1], "-", color="lightgray", zorder=1)
        sc = ax.scatter(points[:, 0], points[:, 1], c=range(len(points)), cmap="viridis", zorder=2)
        for i, (px, py) in enumerate(points):
            ax.annotate(str(i), (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_title(f"{matrix}: consecutive / all-pairs distance {ratios[matrix]:.2f}", fontsize=10)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        fig.colorbar(sc, ax=ax, label="layer")
    fig.suptitle("Each layer's SVD block V_l (top 32 singular directions) in 2-D PCA,\njoined in layer order",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return ratios


def predictor_table(curves: dict[str, dict[str, str]]) -> list[str]:
    """Markdown rows: held-out MSE of each predictor against the trivial predictors, per matrix type."""
    keys = ("predictor", "mean_of_neighbours", "copy_lower", "copy_upper", "zero")
    lines = ["| predictor | matrix | held-out layer | predictor MSE | mean of neighbours | copy lower | copy upper | zeros |",
             "|---|---|---|---|---|---|---|---|"]
    for space, per_matrix in curves.items():
        for matrix, path in per_matrix.items():
            r = json.loads(Path(path).read_text())
            b = r["val_mse_against_baselines"]
            best = min(b, key=b.get)
            cells = [f"**{b[k]:.3e}**" if k == best else f"{b[k]:.3e}" for k in keys]
            lines.append(f"| {space} | {matrix} | {r['val_layer']} | " + " | ".join(cells) + " |")
    return lines
