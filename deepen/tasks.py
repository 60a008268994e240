"""Offline lm-eval tasks built from the held-out test plays: perplexity, last-word cloze, next line.

Task definitions live in ``config/tasks/*.yaml`` with a ``{data_dir}`` placeholder, filled in when the
tasks are evaluated, so the task data directory may move.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from .corpus import read_documents

CLOZE_LINE = re.compile(r"^(?P<head>.*\S)\s+(?P<word>[A-Za-z][A-Za-z']*)[,.;:!?]*$")


def verse_lines(doc: str) -> list[str]:
    """Spoken lines: not speaker labels, not empty, not act/scene headers."""
    out = []
    for line in doc.splitlines():
        s = line.strip()
        if not s or s.endswith(":") or s.isupper() or s.startswith(("ACT ", "SCENE ", "Enter ", "Exit", "Exeunt")):
            continue
        out.append(s)
    return out


def ppl_docs(docs: list[str], chunk_chars: int, max_docs: int) -> list[dict]:
    chunks = []
    for doc in docs:
        current = ""
        for line in doc.splitlines(keepends=True):
            if len(current) + len(line) > chunk_chars and current:
                chunks.append({"text": current})
                current = ""
            current += line
        if current.strip():
            chunks.append({"text": current})
    return chunks[:max_docs]


def _spread(items: list, n: int, rng: random.Random) -> list:
    return items if len(items) <= n else sorted(rng.sample(items, n), key=items.index)


def cloze_docs(docs: list[str], context_lines: int, max_docs: int, rng: random.Random) -> list[dict]:
    out = []
    for doc in docs:
        lines = doc.splitlines()
        for i, line in enumerate(lines):
            m = CLOZE_LINE.match(line.strip())
            if i < context_lines or not m or len(line.split()) < 4 or line.strip().endswith(":"):
                continue
            context = "\n".join(lines[i - context_lines : i] + [m["head"]])
            out.append({"context": context, "target": m["word"]})
    return _spread(out, max_docs, rng)


def next_line_docs(docs: list[str], context_lines: int, max_docs: int, rng: random.Random) -> list[dict]:
    out = []
    for doc in docs:
        verse = verse_lines(doc)
        pool = sorted(set(verse))
        for i in range(context_lines, len(verse)):
            answer = verse[i]
            distractors = [l for l in rng.sample(pool, min(12, len(pool))) if l != answer][:3]
            if len(distractors) < 3:
                continue
            choices = distractors + [answer]
            rng.shuffle(choices)
            out.append({"context": "\n".join(verse[i - context_lines : i]), "choices": choices,
                        "label": choices.index(answer)})
    return _spread(out, max_docs, rng)


def build_task_data(test_txt, out_dir, cfg: dict) -> None:
    """Write one jsonl per task kind into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    docs = read_documents(test_txt)
    rng = random.Random(cfg["seed"])
    data = {
        "ppl": ppl_docs(docs, cfg["ppl_chunk_chars"], cfg["max_docs"]),
        "cloze": cloze_docs(docs, cfg["context_lines"], cfg["max_docs"], rng),
        "next_line": next_line_docs(docs, cfg["context_lines"], cfg["max_docs"], rng),
    }
    for name, rows in data.items():
        if not rows:
            raise ValueError(f"task data {name!r} is empty: the test split is too small")
        with open(out_dir / f"{name}.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


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


def evaluate(model_dir, templates_dir, data_dir, cfg: dict, threads: int = 1) -> dict:
    """Run lm-eval on a local model directory; return a json-serialisable dict.

    ``cfg``: the eval section: ``tasks`` (embedded ones from ``templates_dir``, lm-eval's registered ones, and
    those of ``include_path``), ``num_fewshot`` (per task; a task not named there: 0 for embedded tasks, the
    task's own default for the others), ``batch_size``, ``precision``."""
    import tempfile

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from . import dlo  # noqa: F401  registers the DLO model type with transformers' Auto classes
    from .registered_tasks import task_manager

    torch.set_num_threads(max(1, threads))
    embedded = embedded_task_names(templates_dir)
    lm = HFLM(pretrained=str(model_dir), batch_size=cfg["batch_size"],
              device="cuda" if torch.cuda.is_available() else "cpu", dtype=EVAL_DTYPES[cfg.get("precision", "fp32")])
    shots = cfg.get("num_fewshot") or {}
    # simple_evaluate takes one few-shot count for all its tasks: one call per count
    by_shots: dict = {}
    for task in cfg["tasks"]:
        by_shots.setdefault(shots.get(task, 0 if task in embedded else None), []).append(task)
    merged = {"results": {}, "n-samples": {}, "versions": {}, "n-shot": {}}
    with tempfile.TemporaryDirectory() as include:
        render_tasks(templates_dir, data_dir, include)
        paths = [include] + ([str(cfg["include_path"])] if cfg.get("include_path") else [])
        # lm-eval's own index (thousands of YAMLs) only when a task is in neither folder
        manager = task_manager(cfg["tasks"], paths)
        for n, tasks in by_shots.items():
            results = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, bootstrap_iters=0,
                                      log_samples=False, num_fewshot=n)
            for key in merged:
                merged[key].update(results.get(key) or {})
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
