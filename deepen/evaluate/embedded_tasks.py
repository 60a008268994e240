"""Offline lm-eval tasks built from the held-out test plays: perplexity, last-word cloze, next line.

Task definitions live in ``config/tasks/*.yaml`` with a ``{data_dir}`` placeholder, filled in when the
tasks are evaluated, so the task data directory may move.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from deepen.core.atomic import atomic_dir
from deepen.data.corpus import read_documents

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


def next_line_docs(docs: list[str], context_lines: int, max_docs: int, rng: random.Random,
                   fits=lambda choice: True) -> tuple[list[dict], int]:
    """The items, and how many were dropped because a choice does not fit the models' window (``fits``: whether a
    choice, as lm-eval scores it, fits)."""
    out, dropped = [], 0
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
            if not all(fits(c) for c in choices):
                dropped += 1
                continue
            out.append({"context": "\n".join(verse[i - context_lines : i]), "choices": choices,
                        "label": choices.index(answer)})
    return _spread(out, max_docs, rng), dropped


def window_check(tokenizer_dir, window: int, delimiter: str = "\n"):
    """Whether a choice fits a model of ``window`` tokens as lm-eval scores it: the delimiter and the choice are the
    continuation, which lm-eval cannot cut (it cuts the context from the left), and at least one token of context
    must stay."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return lambda choice: len(tokenizer(delimiter + choice, add_special_tokens=False)["input_ids"]) < window


WHY_EMPTY = {
    "ppl": "the test split holds no text",
    "cloze": "no line or sentence of the test split has four words or more, ends in a word and follows "
             "{context_lines} others in its document (eval.context_lines)",
    "next_line": "no document of the test split has {need} lines or sentences (eval.context_lines + 1, and four "
                 "different ones for the choices)",
    "next_line_window": "each of its {dropped} items has a choice (a line or sentence of the test split) longer than "
                        "the models' window of {window} tokens; split the documents into shorter lines, or use a "
                        "model with a longer window",
}


def build_task_data(test_txt, out_dir, cfg: dict, fits=lambda choice: True, window: int | None = None) -> dict:
    """Write one jsonl per task kind into ``out_dir``, and counts.json: the items of each, and those dropped because
    they do not fit the models' window of ``window`` tokens (``fits``, deepen/evaluate/embedded_tasks.py:
    window_check). Returns the counts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    docs = read_documents(test_txt)
    rng = random.Random(cfg["seed"])
    # one random stream, drawn in this order: cloze's items first, then next line's
    ppl = ppl_docs(docs, cfg["ppl_chunk_chars"], cfg["max_docs"])
    cloze = cloze_docs(docs, cfg["context_lines"], cfg["max_docs"], rng)
    next_line, dropped = next_line_docs(docs, cfg["context_lines"], cfg["max_docs"], rng, fits)
    data = {"ppl": ppl, "cloze": cloze, "next_line": next_line}
    for name, rows in data.items():
        if not rows:
            why = WHY_EMPTY["next_line_window" if name == "next_line" and dropped else name].format(
                context_lines=cfg["context_lines"], need=max(cfg["context_lines"] + 1, 4), dropped=dropped,
                window=window)
            raise ValueError(f"task data {name!r} (task deepen_{name}) cannot be built from the "
                             f"{len(docs)} test documents: {why}")
        with open(out_dir / f"{name}.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    counts = {name: {"items": len(rows)} for name, rows in data.items()}
    counts["next_line"]["dropped_longer_than_window"] = dropped
    counts["window"] = window
    if dropped:
        print(f"deepen_next_line: {dropped} items dropped, a choice longer than the models' window of {window} tokens; "
              f"{len(next_line)} kept")
    (out_dir / "counts.json").write_text(json.dumps(counts, indent=1) + "\n")
    return counts


def tasks_stage(test_txt, out_dir, eval_cfg: dict, templates_dir, tokenizer_dir=None, window: int | None = None) -> None:
    """The embedded tasks' data, built to fit the models' window of ``window`` tokens (by ``tokenizer_dir``'s
    tokenizer), and where each registered task's items come from (decided once here, for every evaluation)."""
    from deepen.evaluate.harness import embedded_task_names
    from deepen.evaluate.registered_tasks import record_sources

    registered = [t for t in eval_cfg["tasks"] if t not in embedded_task_names(templates_dir)]
    with atomic_dir(out_dir) as tmp:
        fits = window_check(tokenizer_dir, window) if tokenizer_dir and window else (lambda choice: True)
        build_task_data(test_txt, tmp, eval_cfg, fits, window)
        record_sources(registered, eval_cfg.get("include_path"), eval_cfg.get("benchmark_data"), tmp)
