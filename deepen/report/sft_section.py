"""The SFT variants of the report (the base, the dense expansion, DLO over it): held-out SFT loss, lm-eval metrics, the fraction of MLP evaluations DLO
skips and its measured speed against the dense compute of the same weights; DLO's per-layer
execution rates as a plot."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import statistics

from deepen.core.atomic import atomic_path
from deepen.core.stats import paired_difference, t_interval
from deepen.evaluate.harness import flat_metrics


def _mean(values):
    return statistics.fmean(values) if values else None


def sft_variants(runs: list[dict], dense: str) -> list[dict]:
    """One record per SFT variant, means over seeds; the held-out loss with its t-interval over seeds and its
    paired (by seed) difference to ``dense``, the dense expansion DLO wraps."""
    by_variant = defaultdict(list)
    for run in runs:
        by_variant[run["variant"]].append({**json.loads(Path(run["info"]).read_text()), "seed": run["seed"],
                                   "metrics": flat_metrics(json.loads(Path(run["eval"]).read_text()))})
    by_seed = {v: {i["seed"]: i["heldout_loss"] for i in infos} for v, infos in by_variant.items()}
    records = []
    for variant, infos in by_variant.items():
        metric_names = sorted(m for m in infos[0]["metrics"] if not m.endswith("sample_len"))
        heldout = t_interval(by_seed[variant].values())
        versus_dense = paired_difference(by_seed[variant], by_seed[dense]) if variant != dense else None
        records.append({
            "variant": variant, "seeds": len(infos), "params": infos[0]["params"],
            "heldout_loss": heldout.mean, "heldout_loss_half_width": heldout.half_width,
            "heldout_minus_dense": versus_dense.mean if versus_dense else None,
            "heldout_minus_dense_half_width": versus_dense.half_width if versus_dense else None,
            "heldout": heldout, "versus_dense": versus_dense,
            "skipped_fraction": _mean([i["skipped_fraction"] for i in infos]),
            "tokens_per_second": _mean([i["tokens_per_second"] for i in infos]),
            "speed_ratio": _mean([i["speed_ratio"] for i in infos]) if "speed_ratio" in infos[0] else None,
            "mlp_time_share": _mean([i["mlp_time_share"] for i in infos]) if "mlp_time_share" in infos[0] else None,
            "execution_rates": [_mean(list(r)) for r in zip(*[i["execution_rates"] for i in infos])],
            **{m: _mean([i["metrics"][m] for i in infos]) for m in metric_names},
        })
    return records


def plot_execution_rates(records: list[dict], png_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for r in records:
        if r["execution_rates"]:
            ax.bar(range(len(r["execution_rates"])), r["execution_rates"], color="tab:blue")
            ax.set_title(f"DLO: share of held-out tokens that run each layer's MLP (mean over {r['seeds']} seed(s))")
    ax.set_xlabel("layer")
    ax.set_ylabel("MLP execution rate")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def sft_markdown(records: list[dict], dense: str) -> list[str]:
    metric_names = sorted(k for k in records[0] if "/" in k)
    lines = ["## After SFT: dense variants and DLO", "",
             "Each variant fine-tuned for the same steps on instructions built from the training plays (continue a "
             "speech; name its speaker), loss on response tokens only; held-out loss on the test plays' "
             "instructions, mean ± 95% t-interval over seeds, and its paired (by seed) difference to the dense "
             f"expansion `{dense}` (bold when the interval excludes zero). `skipped` is the share of MLP "
             "evaluations DLO's routers skip on the held-out set; `tokens/s` counts forward passes over the "
             "held-out tokens packed into full rows (no padding); `speed` is DLO's tokens/s against the same "
             "weights with every MLP run, the two timed alternately (CPU).", "",
             f"| variant | seeds | held-out SFT loss | − {dense} (paired) | " + " | ".join(metric_names)
             + " | skipped | tokens/s | speed |",
             "|---|---|---|---|" + "---|" * len(metric_names) + "---|---|---|"]
    for r in records:
        speed = f"{r['speed_ratio']:.2f}×" if r["speed_ratio"] is not None else "—"
        diff = r["versus_dense"]
        diff_text = "—" if diff is None else (f"**{diff.format(4)}**" if diff.excludes_zero() else diff.format(4))
        lines.append(f"| {r['variant']} | {r['seeds']} | {r['heldout'].format(4)} | {diff_text} | "
                     + " | ".join(f"{r[m]:.4g}" for m in metric_names)
                     + f" | {r['skipped_fraction']:.1%} | {r['tokens_per_second']:.0f} | {speed} |")
    for r in records:
        if r["mlp_time_share"] is not None:
            lines += ["", f"The MLPs take {r['mlp_time_share']:.0%} of a dense forward pass of {r['variant']}'s weights "
                          f"(measured against attention only), so skipping {r['skipped_fraction']:.1%} of MLP "
                          f"evaluations could save at most ~{r['mlp_time_share'] * r['skipped_fraction']:.1%} of the "
                          "time, before the routers' own cost."]
    lines += ["", "![DLO execution rates](dlo_execution.png)", ""]
    return lines


def write_sft_report(runs: list[dict], dense: str, md_path, csv_path, png_path) -> None:
    records = sft_variants(runs, dense)
    plot_execution_rates(records, png_path)
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text("\n".join(sft_markdown(records, dense)) + "\n")
    fields = [k for k in records[0] if k not in ("heldout", "versus_dense", "execution_rates")]
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields + ["execution_rates"])
        writer.writeheader()
        for r in records:
            writer.writerow({**{k: r.get(k) for k in fields},
                             "execution_rates": " ".join(f"{x:.3f}" for x in r["execution_rates"])})
