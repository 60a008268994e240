"""Step 0: every expanded model's val loss on the fixed slice before any training, next to the base's.

It is the cheapest figure of the comparison and the most telling at small scale: it needs no training,
and it covers the methods the config does not train (``cpt: false``) too."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from deepen.core.atomic import atomic_path
from deepen.core.stats import t_interval


def load_init_losses(paths: dict[str, str]) -> dict[str, dict]:
    """``paths``: model name ('base', 'lesa', 'random/seed0', …) -> results/init json."""
    return {model: json.loads(Path(p).read_text()) for model, p in paths.items()}


def losses_by_method(models: dict[str, dict], method_models: dict[str, list[str]]) -> dict[str, list[float]]:
    """method -> the step-0 losses of its models ('base' included as a method of its own)."""
    out = {"base": [models["base"]["val_loss"]]} if "base" in models else {}
    for method, names in method_models.items():
        out[method] = [models[n]["val_loss"] for n in names if n in models]
    return out


def init_table(models: dict[str, dict], method_models: dict[str, list[str]], trained: list[str]) -> list[dict]:
    """One record per method and the base, lowest step-0 loss first."""
    base = models["base"]["val_loss"]
    records = []
    for method, names in [("base", ["base"]), *method_models.items()]:
        infos = [models[n] for n in names]
        loss = t_interval(i["val_loss"] for i in infos)
        records.append({"method": method, "models": len(infos), "layers": infos[0]["layers"],
                        "params": infos[0]["params"], "init_val_loss": loss, "minus_base": loss.mean - base,
                        "val_tokens": infos[0]["val_tokens"], "trained": method == "base" or method in trained})
    return sorted(records, key=lambda r: r["init_val_loss"].mean)


def write_init_csv(table: list[dict], path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "models", "layers", "params", "init_val_loss_mean", "init_val_loss_ci95",
                         "minus_base", "val_tokens", "trained"])
        for r in table:
            iv = r["init_val_loss"]
            writer.writerow([r["method"], r["models"], r["layers"], r["params"], round(iv.mean, 6),
                             "" if math.isnan(iv.half_width) else round(iv.half_width, 6), round(r["minus_base"], 6),
                             r["val_tokens"], r["trained"]])


def init_section(table: list[dict]) -> list[str]:
    tokens = table[0]["val_tokens"]
    lines = ["## Step 0: every model before training", "",
             f"Val loss (nats/token) of each expanded model on the fixed slice of {tokens:,} held-out tokens, before "
             "any update, next to the base's own. A function-preserving method starts exactly at the base's loss; "
             "how far above it a method starts is what its initialisation costs. Rows marked `—` in the last "
             "column are not trained in this run. Methods that draw random numbers have one model per seed: mean ± "
             "95% interval over them.", "",
             "| method | models | layers | params | step-0 val loss | − base | trained |", "|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| `{r['method']}` | {r['models']} | {r['layers']} | {r['params'] / 1e6:.2f} M | "
                     f"{r['init_val_loss'].format()} | {r['minus_base']:+.4f} | {'yes' if r['trained'] else '—'} |")
    return lines + [""]
