"""The report: one row per (method, freeze policy) with mean and 95% interval over seeds, paired
differences against a reference method, loss curves over steps and over training FLOPs, a summary
paragraph generated from the numbers, and the base model's own training curve."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .config import match_row
from .stats import Interval, paired_difference, t_interval
from .tasks import flat_metrics
from .tensorio import atomic_path
from .train import read_metrics, steps_to_reach

BASE_METHOD = "base"
# lm-eval metrics shown in the markdown table (all of them go to the csv)
HEADLINE_METRICS = ["deepen_ppl/bits_per_byte", "deepen_cloze/acc", "deepen_next_line/acc"]


def row_name(method: str, freeze: str) -> str:
    return f"{method}/{freeze}"


def load_runs(runs: list[dict]) -> dict[str, dict]:
    """``runs``: {method, freeze, seed, metrics, info, eval} per CPT run (paths) -> per row name:
    {method, freeze, info (of the first seed), seeds: {seed: {metrics, eval}}}, in run order."""
    rows: dict[str, dict] = {}
    for r in runs:
        name = row_name(r["method"], r["freeze"])
        info = json.loads(Path(r["info"]).read_text())
        row = rows.setdefault(name, {"method": r["method"], "freeze": r["freeze"], "info": info, "seeds": {}})
        row["seeds"][int(r["seed"])] = {
            "metrics": read_metrics(r["metrics"]),
            "eval": {k: v for k, v in flat_metrics(json.loads(Path(r["eval"]).read_text())).items()
                     if not k.endswith("sample_len")},
            "info": info,
        }
    return rows


def resolve_row(name: str, rows: dict[str, dict]) -> str:
    """'method/freeze', or 'method' for the first of the method's rows."""
    return row_name(*match_row(name, [(v["method"], v["freeze"]) for v in rows.values()]))


def reference_row(row: dict, reference: str, rows: dict[str, dict]) -> str:
    """The reference method under the row's freeze policy when it runs under it, else its first row."""
    same = row_name(reference, row["freeze"])
    return same if same in rows else resolve_row(reference, rows)


def finals(row: dict) -> dict[int, float]:
    return {s: r["metrics"][-1]["val_loss"] for s, r in row["seeds"].items()}


def flops_per_step(info: dict) -> float:
    return info["train_flops_per_token"] * info["tokens_per_step"]


def summarise(rows: dict[str, dict], target, reference: str) -> tuple[list[dict], float]:
    """One summary record per row; the target loss is a number or the mean final loss of a row."""
    if isinstance(target, (int, float)):
        target_loss = float(target)
    else:
        target_loss = t_interval(finals(rows[resolve_row(target, rows)]).values()).mean
    table = []
    for name, row in rows.items():
        info, seeds = row["info"], row["seeds"]
        steps = [steps_to_reach(r["metrics"], target_loss) for r in seeds.values()]
        reached = [s for s in steps if s is not None]
        ref = reference_row(row, reference, rows)
        record = {
            "row": name,
            "method": row["method"],
            "freeze": row["freeze"],
            "generator": info.get("generator", ""),
            "layers": info["layers"],
            "params": info["params"],
            "trainable_params": info["trainable_params"],
            "train_flops_per_token": info["train_flops_per_token"],
            "cpt_tflops": flops_per_step(info) * info["steps"] / 1e12,
            "seeds": len(seeds),
            "init_val_loss": t_interval(r["metrics"][0]["val_loss"] for r in seeds.values()),
            "final_val_loss": t_interval(finals(row).values()),
            "reference": ref,
            "minus_reference": None if ref == name else paired_difference(finals(row), finals(rows[ref])),
            "steps_to_target": t_interval(reached),
            "target_reached": len(reached),
            "tflops_to_target": t_interval(s * flops_per_step(info) / 1e12 for s in reached),
            "cpt_seconds": t_interval(r["metrics"][-1]["seconds"] for r in seeds.values()),
        }
        metrics = sorted({k for r in seeds.values() for k in r["eval"]})
        record["eval"] = {k: t_interval(r["eval"][k] for r in seeds.values() if k in r["eval"]) for k in metrics}
        table.append(record)
    return table, target_loss


def _csv_value(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else round(v, 6)
    return v


def write_csv(table: list[dict], path) -> None:
    """summary.csv: one line per row; an interval becomes ``<name>_mean`` and ``<name>_ci95``
    (the half-width)."""
    lines = []
    for rec in table:
        line = {}
        for k, v in rec.items():
            if k == "eval":
                for metric, iv in v.items():
                    line[f"{metric}_mean"] = _csv_value(iv.mean)
            elif isinstance(v, Interval) or (k == "minus_reference"):
                line[f"{k}_mean"] = "" if v is None else _csv_value(v.mean)
                line[f"{k}_ci95"] = "" if v is None else _csv_value(v.half_width)
            else:
                line[k] = _csv_value(v)
        if rec["minus_reference"] is not None:
            line["minus_reference_significant"] = rec["minus_reference"].excludes_zero()
        lines.append(line)
    fields = list(dict.fromkeys(k for line in lines for k in line))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(lines)


def write_runs_csv(rows: dict[str, dict], path) -> None:
    """runs.csv: every CPT run, one line per seed and evaluation step (the raw numbers behind the means)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "method", "freeze", "seed", "step", "tokens", "train_flops", "train_loss",
                         "val_loss", "seconds"])
        for name, row in rows.items():
            for seed, r in row["seeds"].items():
                per_step = flops_per_step(r["info"])
                for m in r["metrics"]:
                    writer.writerow([name, row["method"], row["freeze"], seed, m["step"], m["tokens"],
                                     f"{m['step'] * per_step:.6g}", m["train_loss"], m["val_loss"], m["seconds"]])


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


def _fmt_count(v: float) -> str:
    return f"{v / 1e6:.2f} M" if v >= 1e5 else f"{v:.0f}"


def _steps_cell(rec: dict) -> str:
    n, k, iv = rec["seeds"], rec["target_reached"], rec["steps_to_target"]
    if k == 0:
        return f"never (0/{n})"
    return f"{iv.format(0)} ({k}/{n})"


def _diff_cell(rec: dict) -> str:
    d = rec["minus_reference"]
    if d is None:
        return "reference"
    cell = f"{d.mean:+.4f} ± {d.half_width:.4f}" if not math.isnan(d.half_width) else f"{d.mean:+.4f}"
    return f"**{cell}**" if d.excludes_zero() else cell


def _seeds_text(settings: dict) -> str:
    """'3 seeds', or '3 seeds (1 for some rows)' when rows ran different numbers of seeds."""
    most, fewest = settings["seeds"], settings.get("min_seeds", settings["seeds"])
    text = f"{most} seed{'s' if most > 1 else ''}"
    return text if fewest == most else f"{text} ({fewest} for some rows)"


def what_this_run_says(table: list[dict], rows: dict[str, dict], reference: str, settings: dict) -> str:
    """A paragraph generated from the numbers: best row per freeze policy and significant differences
    against the reference (the papers' claims follow it, one verdict each: deepen/claims.py)."""
    out = []
    policies = list(dict.fromkeys(r["freeze"] for r in table if r["method"] != BASE_METHOD))
    for policy in policies:
        recs = [r for r in table if r["freeze"] == policy and r["method"] != BASE_METHOD]
        best = min(recs, key=lambda r: r["final_val_loss"].mean)
        out.append(f"Training `{policy}`, the lowest final loss is `{best['row']}` "
                   f"({best['final_val_loss'].format()} nats).")
    better = [r for r in table if r["minus_reference"] and r["minus_reference"].excludes_zero()
              and r["minus_reference"].mean < 0]
    worse = [r for r in table if r["minus_reference"] and r["minus_reference"].excludes_zero()
             and r["minus_reference"].mean > 0]
    undecided = [r for r in table if r["minus_reference"] and not r["minus_reference"].excludes_zero()
                 and not math.isnan(r["minus_reference"].half_width)]
    unpaired = [r for r in table if r["minus_reference"] and math.isnan(r["minus_reference"].half_width)]

    def names(rs):
        return ", ".join(f"`{r['row']}` ({r['minus_reference'].mean:+.4f})" for r in rs) or "none"

    if better or worse or undecided:
        out.append(f"Against `{reference}` under the same freeze policy (paired by seed, 95% interval), "
                   f"significantly lower: {names(better)}; significantly higher: {names(worse)}; "
                   f"not distinguishable from it: {names(undecided)}.")
        if unpaired:
            out.append(f"One shared seed, so no interval and no verdict: {names(unpaired)}.")
    else:
        out.append("With one seed there are no intervals: no difference can be called significant.")
    out.append(f"All of this is {_seeds_text(settings)} of a {settings['model_size']} model continued for "
               f"{settings['cpt']['steps']} steps: it can rank initialisations at this scale, but cannot decide "
               "what the papers measure at 1-8 B parameters and billions of tokens.")
    return " ".join(out)


def write_markdown(table: list[dict], rows: dict[str, dict], target_loss: float, target, reference: str,
                   settings: dict, path, sections: list[str] | None = None, says: list[str] | None = None) -> None:
    """summary.md: the generated paragraph (with ``says``, more of it: the step-0 ranking, the claims'
    verdicts), the table of rows, the loss curves, then ``sections``."""
    metrics = [m for m in HEADLINE_METRICS if any(m in r["eval"] for r in table)]
    cpt = settings["cpt"]
    cols = ["row", "n", "trainable", "CPT TFLOPs", "init val loss", "final val loss", f"final − {reference} (paired)",
            "steps to target", "TFLOPs to target", *metrics]
    lines = [
        "# deepen: depth up-scaling comparison",
        "",
        f"Base model: {settings['base_desc']}. Every row continues pretraining for the same budget: "
        f"{cpt['steps']} steps of {cpt['batch_size']} x {cpt['seq_len']} tokens, peak lr {cpt['lr']}, "
        f"repeated with {_seeds_text(settings)} (data order and any random initialisation; column `n`). A row is "
        "`method/freeze`: `new_only` trains only the layers the method added, `all` trains every parameter.",
        "",
        "## What this run says",
        "",
        what_this_run_says(table, rows, reference, settings),
        "",
        *(says or []),
        "## Rows",
        "",
        f"Values are mean ± half-width of the 95% t-interval over seeds. Losses are nats per token on a fixed "
        f"validation set of {settings['val_tokens']:,} tokens from held-out plays, the same for every run. "
        f"`final − {reference}`: the paired (same seed) difference to `{reference}` under the same freeze policy; "
        "bold when its interval excludes zero. Target loss for `steps to target`: "
        f"{target_loss:.4f} ({'mean final val loss of ' + target if isinstance(target, str) else 'set in the config'}); "
        "(k/n) = seeds that reached it; the mean is over those. FLOPs count forward and backward of what trains "
        "(matrix multiplies; `deepen/flops.py`). lm-eval metrics are on the held-out test plays "
        "(bits_per_byte: lower is better; acc: higher is better).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in sorted(table, key=lambda r: r["final_val_loss"].mean):
        tf = r["tflops_to_target"]
        cells = [f"`{r['row']}`", str(r["seeds"]), _fmt_count(r["trainable_params"]), f"{r['cpt_tflops']:.3g}",
                 r["init_val_loss"].format(), r["final_val_loss"].format(), _diff_cell(r), _steps_cell(r),
                 tf.format(3) if r["target_reached"] else "", *(r["eval"][m].format() for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "![loss curves](loss_curves.png)", "", *(sections or [])]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines))


def continuity(svd_path, top_rows: int = 32) -> dict:
    """Each layer's block V_l (its ``top_rows`` leading singular directions) as one point: the 2-D PCA of the
    points, the mean consecutive distance over the mean distance of all layer pairs (``ratio``; 1 means
    neighbours are no closer than any two layers), and how many layers have an adjacent layer as their
    nearest (``adjacent_nearest``, against ``adjacent_by_chance`` for points in random order)."""
    import torch

    from .tensorio import CheckpointReader

    v = CheckpointReader(svd_path).get_slice("V")
    layers, rows, _ = v.get_shape()
    k = min(top_rows, rows)
    x = torch.stack([v[l : l + 1, :k][0].reshape(-1) for l in range(layers)]).double()
    dist = torch.cdist(x, x)
    consecutive = torch.diagonal(dist, 1).mean().item()
    pairs = dist[torch.triu(torch.ones(layers, layers, dtype=torch.bool), 1)].mean().item()
    nearest = (dist + torch.diag(torch.full((layers,), math.inf, dtype=dist.dtype))).argmin(dim=1)
    adjacent = sum(abs(int(nearest[l]) - l) == 1 for l in range(layers)) / layers
    # a layer's nearest other layer, drawn at random: 1 of L-1 for the two ends, 2 of L-1 elsewhere
    chance = (2 * (layers - 2) + 2) / layers / (layers - 1)
    centred = x - x.mean(0)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    points = (centred @ vt[:2].T).numpy()
    return {"points": points, "ratio": consecutive / pairs, "adjacent_nearest": adjacent, "adjacent_by_chance": chance}


def plot_continuity(svd_paths: dict[str, str], path) -> dict[str, dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    n = len(svd_paths)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(7, 5.2 * cols), 4.6 * rows), squeeze=False)
    for ax, (matrix, svd_path) in zip(axes.flat, svd_paths.items()):
        c = continuity(svd_path)
        points = c.pop("points")
        out[matrix] = c
        ax.plot(points[:, 0], points[:, 1], "-", color="lightgray", zorder=1)
        sc = ax.scatter(points[:, 0], points[:, 1], c=range(len(points)), cmap="viridis", zorder=2)
        for i, (px, py) in enumerate(points):
            ax.annotate(str(i), (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_title(f"{matrix}: consecutive / all-pairs distance {c['ratio']:.2f}\nnearest layer adjacent: "
                     f"{c['adjacent_nearest']:.0%} (chance {c['adjacent_by_chance']:.0%})", fontsize=9)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        fig.colorbar(sc, ax=ax, label="layer")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Each layer's SVD block V_l (top 32 singular directions) in 2-D PCA,\njoined in layer order",
                 fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip("."))
    plt.close(fig)
    return out


def continuity_section(ratios: dict[str, dict]) -> list[str]:
    lines = ["## Continuity of layers in SVD space", "",
             "LESA's premise: consecutive layers' SVD blocks V_l lie closer together than arbitrary pairs. "
             "`ratio`: mean distance between consecutive layers' blocks (top 32 singular directions) over the mean "
             "distance of all layer pairs; below 1 means neighbours are closer. `nearest adjacent`: the share of "
             "layers whose nearest layer is one of their neighbours, against the share random order would give.", "",
             "| matrix | ratio | nearest adjacent | by chance |", "|---|---|---|---|"]
    for matrix, c in ratios.items():
        lines.append(f"| {matrix} | {c['ratio']:.3f} | {c['adjacent_nearest']:.0%} | {c['adjacent_by_chance']:.0%} |")
    return lines + ["", "![svd continuity](svd_continuity.png)", ""]


def predictor_table(heldout: dict[str, dict[str, str]]) -> list[str]:
    """Markdown rows: for every leave-one-out fit, the held-out layer's MSE of the predictor against the trivial
    predictors, per space and matrix type. ``heldout``: space -> matrix -> results/predictor_heldout json."""
    keys = ("predictor", "mean_of_neighbours", "copy_lower", "copy_upper", "zero")
    lines = ["| space | matrix | held-out layer | predictor MSE | mean of neighbours | copy lower | copy upper | zeros |",
             "|---|---|---|---|---|---|---|---|"]
    for space, per_matrix in heldout.items():
        for matrix, path in per_matrix.items():
            for fit in json.loads(Path(path).read_text())["fits"]:
                b = fit["against_baselines"]
                best = min(b, key=b.get)
                cells = [f"**{b[k]:.3e}**" if k == best else f"{b[k]:.3e}" for k in keys]
                lines.append(f"| {space} | {matrix} | {fit['layer']} | " + " | ".join(cells) + " |")
    return lines
