"""The growth branch's report: loss against cumulative FLOPs, and the speedup of each grown run over
training the target from scratch."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import statistics

from deepen.core.atomic import atomic_path
from deepen.train.growth import reach_flops, speedup
from deepen.train.metrics import read_metrics


def flops_curve(metrics_path, info: dict) -> list[tuple[float, float]]:
    """(cumulative FLOPs, val loss) at every evaluation of a run, counting from ``flops_offset`` (the
    small model's cost, for a grown run)."""
    per_step = info["tokens_per_step"] * info["flops_per_token"]
    return [(info["flops_offset"] + m["step"] * per_step, m["val_loss"]) for m in read_metrics(metrics_path)]


def _load(path) -> dict:
    return json.loads(Path(path).read_text())


def _mean(values):
    return statistics.fmean(values) if values else None


def growth_table(scratch: list[dict], grown: list[dict]) -> tuple[dict, list[dict]]:
    """Scratch's summary and one row per (operator, g, d): final loss and speedup, averaged over seeds.
    A seed's speedup is measured against the scratch run of the same seed."""
    scratch_by_seed = {}
    for run in scratch:
        info = _load(run["info"])
        curve = flops_curve(run["metrics"], info)
        scratch_by_seed[run["seed"]] = {"curve": curve, "final": curve[-1][1], "flops": curve[-1][0]}
    finals = [s["final"] for s in scratch_by_seed.values()]
    scratch_summary = {"final_loss": _mean(finals), "final_losses": finals,
                       "flops": _mean([s["flops"] for s in scratch_by_seed.values()])}
    groups = defaultdict(list)
    for run in grown:
        groups[(run["operator"], run["g"], run["d"])].append(run)
    rows = []
    for (operator, g, d), runs in groups.items():
        per_seed = []
        for run in runs:
            info, small_info = _load(run["info"]), _load(run["small_info"])
            curve = flops_curve(run["metrics"], info)
            ref = scratch_by_seed[run["seed"]]
            reached = reach_flops(curve, ref["final"])
            per_seed.append({"final": curve[-1][1], "total_flops": curve[-1][0], "reached": reached,
                             "speedup": speedup(ref["flops"], reached), "small_steps": info["small_steps"],
                             "grown_steps": info["grown_steps"], "small_tokens": small_info["small_steps"]
                             * small_info["tokens_per_step"]})
        speedups = [p["speedup"] for p in per_seed]
        rows.append({"operator": operator, "g": g, "d": d, "seeds": len(per_seed),
                     "small_tokens": per_seed[0]["small_tokens"], "small_steps": per_seed[0]["small_steps"],
                     "grown_steps": per_seed[0]["grown_steps"],
                     "total_flops": _mean([p["total_flops"] for p in per_seed]),
                     "final_loss": _mean([p["final"] for p in per_seed]),
                     "final_losses": [p["final"] for p in per_seed],
                     # Only when every seed reached scratch's final loss; otherwise the mean would hide it.
                     "speedup": _mean(speedups) if None not in speedups else None,
                     "speedups": speedups})
    rows.sort(key=lambda r: (r["operator"] != "stack", r["operator"], r["g"], float(r["d"])))
    return scratch_summary, rows


def _fmt_speedup(row) -> str:
    if row["speedup"] is None:
        reached = sum(s is not None for s in row["speedups"])
        return f"— (reached by {reached}/{row['seeds']} seeds)" if row["seeds"] > 1 else "—"
    if row["seeds"] > 1:
        return f"{row['speedup']:.1%} (seeds {min(row['speedups']):.1%} … {max(row['speedups']):.1%})"
    return f"{row['speedup']:.1%}"


def growth_markdown(scratch: dict, rows: list[dict]) -> list[str]:
    spread = (f"; across its {len(scratch['final_losses'])} seeds {min(scratch['final_losses']):.4f} … "
              f"{max(scratch['final_losses']):.4f}" if len(scratch["final_losses"]) > 1 else "")
    lines = ["## Model growth (Gstack)", "",
             f"The target trained from scratch spends {scratch['flops']:.3g} FLOPs and ends at val loss "
             f"{scratch['final_loss']:.4f}{spread}. Each grown run pretrains a small model of L/g layers for d tokens, "
             "stacks it, and trains on with a fresh optimizer and schedule for the steps the same budget leaves. "
             "Speedup = 1 − (FLOPs the grown run needed to reach scratch's final loss) / (scratch's FLOPs); "
             "— when it never reached it. FLOPs: 6·N per token plus the attention core "
             "(deepen/models/flops.py).", "",
             "| operator | g | d (tokens) | small steps | grown steps | total FLOPs | final val loss | Δ vs scratch | speedup |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['operator']} | {r['g']} | {r['small_tokens']:,} | {r['small_steps']} | {r['grown_steps']} | "
                     f"{r['total_flops']:.3g} | {r['final_loss']:.4f} | {r['final_loss'] - scratch['final_loss']:+.4f} | "
                     f"{_fmt_speedup(r)} |")
    lines += ["", "![growth curves](growth_curves.png)", ""]
    return lines


def plot_growth_curves(scratch: list[dict], grown: list[dict], png_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = sorted({run["g"] for run in grown})
    fig, axes = plt.subplots(1, len(gs), figsize=(6.5 * len(gs), 4.8), squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, g in zip(axes[0], gs):
        final = None
        for i, run in enumerate(sorted(scratch, key=lambda r: r["seed"])):
            curve = flops_curve(run["metrics"], _load(run["info"]))
            ax.plot(*zip(*curve), color="black", lw=2, alpha=0.8, label="scratch" if i == 0 else None)
            final = curve[-1][1] if final is None else min(final, curve[-1][1])
        labels = sorted({(r["operator"], r["d"]) for r in grown if r["g"] == g},
                        key=lambda k: (k[0] != "stack", k[0], float(k[1])))
        for colour, (operator, d) in enumerate(labels):
            for j, run in enumerate(r for r in grown if r["g"] == g and (r["operator"], r["d"]) == (operator, d)):
                c = colours(colour % 10)
                small = flops_curve(run["small_metrics"], _load(run["small_info"]))
                ax.plot(*zip(*small), color=c, ls=":", lw=1.2)
                ax.plot(*zip(*flops_curve(run["metrics"], _load(run["info"]))), color=c, lw=1.5,
                        label=f"{operator}, d={d}" if j == 0 else None)
        if final is not None:
            ax.axhline(final, color="grey", ls="--", lw=0.8)
        ax.set_title(f"g = {g} (dotted: the small model before growth)")
        ax.set_xlabel("cumulative training FLOPs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("val loss")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_growth_report(scratch: list[dict], grown: list[dict], png_path, md_path, csv_path) -> None:
    summary, rows = growth_table(scratch, grown)
    plot_growth_curves(scratch, grown, png_path)
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text("\n".join(growth_markdown(summary, rows)) + "\n")
    fields = ["operator", "g", "d", "seeds", "small_tokens", "small_steps", "grown_steps", "total_flops",
              "final_loss", "speedup"]
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields + ["scratch_final_loss", "scratch_flops"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r[k] for k in fields}, "scratch_final_loss": summary["final_loss"],
                             "scratch_flops": summary["flops"]})
