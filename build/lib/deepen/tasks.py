"""Offline lm-eval tasks built from the held-out test plays: perplexity, last-word cloze, next line.

Task definitions live in ``config/tasks/*.yaml`` with a ``{data_dir}`` placeholder, filled in when the
tasks are evaluated, so the task data directory may move.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import yaml

from .corpus import read_documents

CLOZE_LINE = re.compile(r"^(?P<head>.*\S)\s+(?P<word>[A-Za-z][A-Za-z']*)[,.;:!?]*$")
# a sentence ends at . ! or ? (and closing quotes or brackets) where white space and a capital, digit or quote follow
SENTENCE_END = re.compile(r"""[.!?]["')\]]*(?=\s+["'(\[]?[A-Z0-9])""")
# a document whose median line is longer than this (prose: a paragraph or a whole document per line) is read by
# sentences; verse and scripts run 30-60 characters a line
MAX_LINE_CHARS = 100


def has_line_structure(lines: list[str]) -> bool:
    lengths = sorted(len(line) for line in lines)
    return bool(lengths) and lengths[len(lengths) // 2] <= MAX_LINE_CHARS


def sentences(line: str) -> list[str]:
    """``line`` cut after each sentence end; joined, the pieces give the line back."""
    cuts = [m.end() for m in SENTENCE_END.finditer(line)]
    return [line[a:b] for a, b in zip([0] + cuts, cuts + [len(line)]) if b > a]


def text_units(doc: str) -> list[str]:
    """A document's units of text: its lines where it has a line structure (verse, a script, short lines), else
    its sentences (prose stored one paragraph, or one document, per line)."""
    lines = [line.strip() for line in doc.splitlines() if line.strip()]
    if has_line_structure(lines):
        return lines
    return [s.strip() for line in lines for s in sentences(line) if s.strip()]


def verse_lines(doc: str) -> list[str]:
    """Spoken lines (or sentences): not speaker labels, not act/scene headers."""
    out = []
    for s in text_units(doc):
        if s.endswith(":") or s.isupper() or s.startswith(("ACT ", "SCENE ", "Enter ", "Exit", "Exeunt")):
            continue
        out.append(s)
    return out


def text_pieces(doc: str, chunk_chars: int) -> list[str]:
    """The document's text in pieces no longer than ``chunk_chars`` where possible, cut at line ends, then at
    sentence ends, then at spaces; joined they give the document back."""
    pieces = []
    for line in doc.splitlines(keepends=True):
        if len(line) <= chunk_chars:
            pieces.append(line)
            continue
        for sentence in sentences(line):
            while len(sentence) > chunk_chars:  # longer than a chunk: cut at the last space before its end
                space = sentence.rfind(" ", 1, chunk_chars)
                end = space + 1 if space > 0 else chunk_chars
                pieces.append(sentence[:end])
                sentence = sentence[end:]
            pieces.append(sentence)
    return pieces


def ppl_docs(docs: list[str], chunk_chars: int, max_docs: int) -> list[dict]:
    chunks = []
    for doc in docs:
        current = ""
        for piece in text_pieces(doc, chunk_chars):
            if len(current) + len(piece) > chunk_chars and current:
                chunks.append({"text": current})
                current = ""
            current += piece
        if current.strip():
            chunks.append({"text": current})
    return chunks[:max_docs]


def _spread(items: list, n: int, rng: random.Random) -> list:
    return items if len(items) <= n else sorted(rng.sample(items, n), key=items.index)


def cloze_docs(docs: list[str], context_lines: int, max_docs: int, rng: random.Random) -> list[dict]:
    out = []
    for doc in docs:
        units = text_units(doc)
        for i, unit in enumerate(units):
            m = CLOZE_LINE.match(unit)
            if i < context_lines or not m or len(unit.split()) < 4 or unit.endswith(":"):
                continue
            context = "\n".join(units[i - context_lines : i] + [m["head"]])
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


WHY_EMPTY = {
    "ppl": "the test split holds no text",
    "cloze": "no line or sentence of the test split has four words or more, ends in a word and follows "
             "{context_lines} others in its document (eval.context_lines)",
    "next_line": "no document of the test split has {need} lines or sentences (eval.context_lines + 1, and four "
                 "different ones for the choices)",
}


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
            why = WHY_EMPTY[name].format(context_lines=cfg["context_lines"],
                                         need=max(cfg["context_lines"] + 1, 4))
            raise ValueError(f"task data {name!r} (task deepen_{name}) cannot be built from the "
                             f"{len(docs)} test documents: {why}")
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
    deepen.device's evaluation dtype), ``device`` (resources.device), ``benchmark_data``. Beside lm-eval's results: each item's scores (``items``), where each registered task's
    items came from (``benchmarks``)."""
    import tempfile

    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import get_task_dict

    from . import dlo  # noqa: F401  registers the DLO model type with transformers' Auto classes
    from .device import evaluation_dtype, stage_device
    from .registered_tasks import task_manager, task_sources
    from .standard_tasks import describe, task_yaml

    torch.set_num_threads(max(1, threads))
    embedded = embedded_task_names(templates_dir)
    registered = [t for t in cfg["tasks"] if t not in embedded]
    sources, problems = task_sources(registered, cfg.get("include_path"), cfg.get("benchmark_data"))
    if problems:
        raise ValueError("\n".join(problems))
    device = stage_device(cfg.get("device", "auto"))
    precision = cfg.get("precision", "auto")
    dtype = str(evaluation_dtype(device)).removeprefix("torch.") if precision == "auto" else EVAL_DTYPES[precision]
    lm = HFLM(pretrained=str(model_dir), batch_size=cfg["batch_size"], device=str(device), dtype=dtype)
    shots = cfg.get("num_fewshot") or {}
    # simple_evaluate takes one few-shot count for all its tasks: one call per count
    by_shots: dict = {}
    for task in cfg["tasks"]:
        by_shots.setdefault(shots.get(task, 0 if task in embedded else None), []).append(task)
    merged = {"results": {}, "n-samples": {}, "versions": {}, "n-shot": {}, "items": {}, "benchmarks": {},
              "leaves": {}}
    with tempfile.TemporaryDirectory() as include:
        render_tasks(templates_dir, data_dir, include)
        # registered tasks read from local data: lm-eval's own YAML included whole, the dataset pointed at the files
        local_dir = Path(include) / "local"
        local_dir.mkdir()
        lm_eval_index = task_manager(registered, []) if any(sources.values()) else None
        for name, found in sources.items():
            for local in found or []:
                config = task_yaml(local, lm_eval_index.task_index[local.task].yaml_path, local_dir)
                (local_dir / f"{local.task}.yaml").write_text(yaml.safe_dump(config))
            merged["benchmarks"][name] = describe(found) if found else {"source": "lm-eval", "split": "", "note": ""}
        paths = [include] + ([str(cfg["include_path"])] if cfg.get("include_path") else []) + [str(local_dir)]
        # lm-eval's own index (thousands of YAMLs) only when a task is in neither folder
        manager = task_manager(cfg["tasks"], paths)
        for n, tasks in by_shots.items():
            samples = {}
            for name, leaves in leaves_by_name(get_task_dict(tasks, manager)).items():
                merged["leaves"][name] = sorted(leaves)
                for leaf, task in leaves.items():
                    chosen = subset(len(task.eval_docs), task_limit(cfg.get("limit"), leaf, name), cfg.get("seed", 0),
                                    leaf)
                    if chosen is not None:
                        samples[leaf] = chosen
            results = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, bootstrap_iters=0,
                                      log_samples=True, num_fewshot=n, samples=samples or None)
            for key in ("results", "n-samples", "versions", "n-shot"):
                merged[key].update(results.get(key) or {})
            for leaf, logged in (results.get("samples") or {}).items():
                merged["items"][leaf] = item_scores(logged)
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
