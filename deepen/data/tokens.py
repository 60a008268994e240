"""Token files: each split tokenized once into ``{split}.bin`` (a flat array of token ids, EOS after each
document) with ``{split}.json`` beside it (dtype, token count, document offsets, the tokenizer's fingerprint).

Every training and evaluation job reads windows of them through ``np.memmap``, so no job tokenizes a split
again or holds one in memory, whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from deepen.core.atomic import atomic_path
from deepen.data.corpus import DOC_SEPARATOR

TOKEN_DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
# Text read per block while streaming a split, and documents per tokenization task.
READ_BLOCK_CHARS = 8 * 1024**2
DOCS_PER_CHUNK = 64
CHARS_PER_CHUNK = 4 * 1024**2
# Text tokenized to estimate a split's tokens per character when sampling it down to corpus.max_tokens.
SAMPLE_CHARS = 1024**2


class TokenizerMismatch(ValueError):
    pass


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 2**16 else "uint32"


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides token ids: the vocabulary (token -> id) and the EOS id put between documents."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    digest = hashlib.sha256(json.dumps([vocab, tokenizer.eos_token_id], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def iter_documents(path: str | Path) -> Iterator[str]:
    """The documents of a split file, read block by block (never the whole file at once)."""
    pending = ""
    with open(path, encoding="utf-8") as f:
        while block := f.read(READ_BLOCK_CHARS):
            pending += block
            *complete, pending = pending.split(DOC_SEPARATOR)
            yield from (d for d in complete if d.strip())
    if pending.strip():
        yield pending


def _chunks(documents: Iterator[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    chars = 0
    for doc in documents:
        chunk.append(doc)
        chars += len(doc)
        if len(chunk) >= DOCS_PER_CHUNK or chars >= CHARS_PER_CHUNK:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


_worker_tokenizer = None


def _load_worker(tokenizer_dir: str) -> None:
    global _worker_tokenizer
    from deepen.data.tokenizer import load_tokenizer

    _worker_tokenizer = load_tokenizer(tokenizer_dir)


def _encode(chunk: list[str]) -> tuple[list[np.ndarray], int]:
    """Each document's ids followed by EOS (the order and ids of ``tokenize_documents``), and the characters
    read."""
    tok = _worker_tokenizer
    if getattr(tok, "is_fast", False):
        # the Rust tokenizer directly: the same ids, without the wrapper's per-call work (about 1.7x faster on the
        # default tokenizer); encode_batch_fast also skips the character offsets
        backend = tok.backend_tokenizer
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        ids = [e.ids for e in encode(chunk, add_special_tokens=False)]
    else:
        ids = tok(chunk, add_special_tokens=False)["input_ids"]
    # uint32 holds any vocabulary and halves what goes back to the writing process against int64
    return [np.asarray(d + [tok.eos_token_id], dtype=np.uint32) for d in ids], sum(map(len, chunk))


def _ordered_results(chunks: Iterator[list[str]], tokenizer_dir: str, workers: int):
    """Encoded chunks in input order, with at most a few chunks in flight per worker (bounded memory)."""
    if workers <= 1:
        _load_worker(tokenizer_dir)
        yield from map(_encode, chunks)
        return
    with ProcessPoolExecutor(workers, initializer=_load_worker, initargs=(tokenizer_dir,)) as pool:
        in_flight: deque = deque()
        for chunk in chunks:
            in_flight.append(pool.submit(_encode, chunk))
            if len(in_flight) >= 3 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def keep_probability(text_path, tokenizer, max_tokens: int) -> float:
    """The share of documents to keep for about ``max_tokens`` tokens, from the tokens per character of the
    split's first documents (up to SAMPLE_CHARS of them) and the file's size."""
    chars = tokens = 0
    for doc in iter_documents(text_path):
        chars += len(doc)
        tokens += len(tokenizer(doc, add_special_tokens=False)["input_ids"]) + 1
        if chars >= SAMPLE_CHARS:
            break
    estimate = Path(text_path).stat().st_size * tokens / max(chars, 1)
    return min(1.0, max_tokens / max(estimate, 1.0))


def write_token_file(text_path, tokenizer_dir, bin_path, json_path, workers: int = 1, progress: bool = True,
                     max_tokens: int | None = None, seed: int = 0) -> dict:
    """Tokenize one split file into ``bin_path`` (atomically) and describe it in ``json_path``.

    With ``max_tokens``, a seeded random sample of whole documents, drawn before tokenizing: each is kept with
    the probability that gives about ``max_tokens`` tokens, and writing stops before the limit is passed."""
    from tqdm import tqdm

    from deepen.data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    dtype = token_dtype(len(tokenizer))
    limit = np.iinfo(TOKEN_DTYPES[dtype]).max
    size = Path(text_path).stat().st_size
    documents = iter_documents(text_path)
    sample = None
    if max_tokens is not None:
        keep = keep_probability(text_path, tokenizer, max_tokens)
        draws = np.random.default_rng(seed)
        documents = (d for d in documents if draws.random() < keep)
        sample = {"max_tokens": max_tokens, "keep_probability": keep, "seed": seed}
    offsets = array("q", [0])
    # characters against the file's bytes: exact for ASCII text, an estimate otherwise
    bar = tqdm(total=size, unit="char", unit_scale=True, desc=f"tokenizing {Path(text_path).name}",
               disable=not progress, mininterval=5)
    with atomic_path(bin_path) as tmp, open(tmp, "wb") as out:
        full = False
        for encoded, chars in _ordered_results(_chunks(documents), str(tokenizer_dir), workers):
            for ids in encoded:
                if max_tokens is not None and offsets[-1] + len(ids) > max_tokens:
                    full = True
                    break
                if ids.size and int(ids.max()) > limit:
                    raise ValueError(f"token id {int(ids.max())} does not fit {dtype} (tokenizer of {len(tokenizer)})")
                out.write(ids.astype(TOKEN_DTYPES[dtype]).tobytes())
                offsets.append(offsets[-1] + len(ids))
            bar.update(chars)
            if full:
                break
    bar.close()
    info = {"dtype": dtype, "tokens": offsets[-1], "documents": len(offsets) - 1, "offsets": offsets[:-1].tolist(),
            "vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
            "tokenizer": tokenizer_fingerprint(tokenizer), "source": str(text_path), "sample": sample}
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(info))
    return info


def token_info(bin_path) -> dict:
    return json.loads(Path(bin_path).with_suffix(".json").read_text())


def open_tokens(bin_path, tokenizer=None) -> np.memmap:
    """A split's token ids as a read-only memmap. With ``tokenizer``, refuse files another tokenizer wrote."""
    info = token_info(bin_path)
    if tokenizer is not None and tokenizer_fingerprint(tokenizer) != info["tokenizer"]:
        raise TokenizerMismatch(
            f"{bin_path} was tokenized with tokenizer {info['tokenizer']}, but this model's tokenizer is "
            f"{tokenizer_fingerprint(tokenizer)}: every model of a run must share the base's tokenizer")
    if info["tokens"] == 0:
        return np.zeros(0, dtype=TOKEN_DTYPES[info["dtype"]])
    return np.memmap(bin_path, dtype=TOKEN_DTYPES[info["dtype"]], mode="r", shape=(info["tokens"],))
