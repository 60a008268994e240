"""summary.md's own text: the paragraph generated from the numbers and the table of rows; the panels' sections
follow it."""

from __future__ import annotations

import math
from pathlib import Path

from deepen.core.atomic import atomic_path
from deepen.report.rows import BASE_METHOD

# lm-eval metrics shown in the markdown table (all of them go to the csv)
HEADLINE_METRICS = ["deepen_ppl/bits_per_byte", "deepen_cloze/acc", "deepen_next_line/acc"]


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
    against the reference (the papers' claims follow it, one verdict each: deepen/report/claims.py)."""
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
        "(matrix multiplies; `deepen/models/flops.py`). lm-eval metrics are on the held-out test plays "
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
