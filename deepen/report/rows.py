"""The rows of the comparison: one per (method, freeze policy), with mean and 95% interval over seeds and paired
differences against a reference method; summary.csv and runs.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from deepen.core.atomic import atomic_path
from deepen.core.stats import Interval, paired_difference, t_interval
from deepen.evaluate.harness import flat_metrics
from deepen.train.metrics import read_metrics, steps_to_reach

BASE_METHOD = "base"


def match_row(name: str, known: list[tuple[str, str]]) -> tuple[str, str]:
    """The row of ``known`` a name means: 'method/freeze', or 'method' for the method's first row."""
    method, _, freeze = name.partition("/")
    candidates = [r for r in known if r[0] == method and (not freeze or r[1] == freeze)]
    if not candidates:
        raise ValueError(f"{name!r} is not a row; rows: {', '.join('/'.join(r) for r in known)}")
    return candidates[0]


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
        evaluation = json.loads(Path(r["eval"]).read_text())
        row["seeds"][int(r["seed"])] = {
            "metrics": read_metrics(r["metrics"]),
            "eval": {k: v for k, v in flat_metrics(evaluation).items() if not k.endswith("sample_len")},
            # per-item scores and where the items came from, for the benchmark table's paired comparisons
            "evaluation": {k: evaluation.get(k, {}) for k in ("items", "leaves", "benchmarks")},
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
