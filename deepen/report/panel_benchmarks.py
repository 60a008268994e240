"""Panel: lm-eval's registered tasks (the benchmarks the papers report), one line per row with each task's headline
metric and their average; present when eval.tasks names any beside the embedded ones."""

from __future__ import annotations

from ..registered_tasks import HEADLINE_METRICS, headline
from ..stats import t_interval
from .panels import panel


def standard_tasks(facts) -> list[str]:
    return [t for t in facts.config["eval"]["tasks"] if t not in facts.embedded_tasks]


@panel("benchmarks", lambda facts: {} if standard_tasks(facts) else None,
       params=lambda facts: {"tasks": standard_tasks(facts)})
def benchmark_panel(inputs, params, view) -> list[str]:
    return standard_task_section(view.rows, list(params["tasks"]))


def standard_task_section(rows: dict[str, dict], tasks: list[str]) -> list[str]:
    """Markdown: one line per row with each task's headline metric (mean and 95% interval over seeds) and
    their average, as the papers' tables give it. ``rows``: report rows, each with seeds' flat metrics."""
    if not tasks:
        return []
    metric_of = {}
    for row in rows.values():
        for seed in row["seeds"].values():
            for task in tasks:
                found = headline(seed["eval"], task)
                if found and task not in metric_of:
                    metric_of[task] = found[0]
    shown = [t for t in tasks if t in metric_of]
    lines = ["## Standard tasks", "",
             "lm-eval's registered tasks (and `eval.include_path`'s), each by the metric the papers report "
             "(acc_norm where the task has it, else acc). Mean over seeds ± 95% interval; Average: the mean of the "
             "tasks, per seed.", "",
             "| row | " + " | ".join(f"{t} ({metric_of[t]})" for t in shown) + " | Average |",
             "|---|" + "---:|" * (len(shown) + 1)]
    for name, row in rows.items():
        seeds = row["seeds"].values()
        cells = [t_interval(s["eval"][f"{t}/{metric_of[t]}"] for s in seeds if f"{t}/{metric_of[t]}" in s["eval"])
                 for t in shown]
        per_seed = [sum(s["eval"][f"{t}/{metric_of[t]}"] for t in shown) / len(shown) for s in seeds
                    if all(f"{t}/{metric_of[t]}" in s["eval"] for t in shown)]
        average = t_interval(per_seed).format(3)
        lines.append(f"| `{name}` | " + " | ".join(c.format(3) for c in cells) + f" | {average} |")
    missing = [t for t in tasks if t not in metric_of]
    if missing:
        lines += ["", f"No headline metric ({', '.join(HEADLINE_METRICS)}) in the results of: {', '.join(missing)}."]
    return lines + [""]
