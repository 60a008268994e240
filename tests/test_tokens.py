"""Token files: each split tokenized once, read through memmaps by every job."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from deepen.data import tokens as tokens_mod
from deepen.data.corpus import DOC_SEPARATOR, read_documents
from deepen.data.tokenizer import load_tokenizer, tokenize_documents, train_tokenizer
from deepen.data.tokens import (TokenizerMismatch, iter_documents, open_tokens, token_dtype, tokenizer_fingerprint,
                           write_token_file)

LINES = ["To be, or not to be, that is the question.", "Whether 'tis nobler in the mind to suffer",
         "The slings and arrows of outrageous fortune,", "Or to take arms against a sea of troubles",
         "And by opposing end them. To die: to sleep;", "No more; and by a sleep to say we end"]


def write_split(path, n_docs, seed=0):
    rng = np.random.default_rng(seed)
    docs = ["\n".join(rng.choice(LINES, size=int(rng.integers(1, 12)))) + "\n" for _ in range(n_docs)]
    path.write_text(DOC_SEPARATOR.join(docs), encoding="utf-8")
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    write_split(root / "train.txt", 300)
    train_tokenizer(root / "train.txt", 300, root / "tokenizer")
    write_split(root / "other.txt", 40, seed=1)
    train_tokenizer(root / "other.txt", 280, root / "other_tokenizer")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_token_file_holds_the_ids_of_tokenizing_each_document_then_eos(corpus, tmp_path, monkeypatch, workers):
    # small chunks, so that two workers share the split and results must come back in order
    monkeypatch.setattr(tokens_mod, "DOCS_PER_CHUNK", 7)
    info = write_token_file(corpus / "train.txt", corpus / "tokenizer", tmp_path / "train.bin", tmp_path / "train.json",
                            workers=workers, progress=False)
    tokenizer = load_tokenizer(corpus / "tokenizer")
    expected = tokenize_documents(corpus / "train.txt", tokenizer)
    ids = open_tokens(tmp_path / "train.bin", tokenizer)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(ids), expected)
    on_disk = json.loads((tmp_path / "train.json").read_text())
    assert on_disk == info and info["tokens"] == len(expected) and info["documents"] == 300
    # every document starts after the previous one's EOS
    starts = np.asarray(info["offsets"])
    assert starts[0] == 0 and np.all(ids[starts[1:] - 1] == tokenizer.eos_token_id)
    assert (tmp_path / "train.bin").stat().st_size == 2 * len(expected)
    assert not list(tmp_path.glob(".*tmp*")), "a temporary was left beside the outputs"


def test_documents_are_streamed_across_read_blocks(corpus, monkeypatch):
    monkeypatch.setattr(tokens_mod, "READ_BLOCK_CHARS", 97)  # blocks cut documents and separators
    assert list(iter_documents(corpus / "train.txt")) == read_documents(corpus / "train.txt")


def test_dtype_fits_the_vocabulary():
    assert token_dtype(49152) == "uint16" and token_dtype(65536) == "uint16"
    assert token_dtype(65537) == "uint32" and token_dtype(128256) == "uint32"


def test_a_model_with_another_tokenizer_is_refused(corpus, tmp_path):
    write_token_file(corpus / "train.txt", corpus / "tokenizer", tmp_path / "t.bin", tmp_path / "t.json", progress=False)
    other = load_tokenizer(corpus / "other_tokenizer")
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(load_tokenizer(corpus / "tokenizer"))
    with pytest.raises(TokenizerMismatch, match=r"t\.bin was tokenized with tokenizer [0-9a-f]+, but this model's"):
        open_tokens(tmp_path / "t.bin", other)


def test_a_failed_tokenization_leaves_no_token_file(corpus, tmp_path, monkeypatch):
    def fail(chunk):
        raise RuntimeError("worker died")

    monkeypatch.setattr(tokens_mod, "_encode", fail)
    with pytest.raises(RuntimeError, match="worker died"):
        write_token_file(corpus / "train.txt", corpus / "tokenizer", tmp_path / "t.bin", tmp_path / "t.json",
                         progress=False)
    assert list(tmp_path.iterdir()) == []


PEAK_RSS = """
import json, resource, sys
sys.path.insert(0, {repo!r})
from deepen.train.cpt import cpt_stage
cpt_stage("llama_pro", {model!r}, {train!r}, {val!r}, json.loads({cfg!r}), {work!r}, {work!r} + "/final",
          {work!r} + "/info.json", threads=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def fake_token_file(path, n_tokens, tokenizer, seed):
    ids = np.random.default_rng(seed).integers(0, len(tokenizer), size=n_tokens, dtype=np.uint16)
    ids.tofile(path)
    path.with_suffix(".json").write_text(json.dumps(
        {"dtype": "uint16", "tokens": n_tokens, "documents": 1, "offsets": [0], "vocab_size": len(tokenizer),
         "eos_token_id": tokenizer.eos_token_id, "tokenizer": tokenizer_fingerprint(tokenizer)}))
    return path


def test_cpt_memory_does_not_grow_with_the_corpus(quick_run, tmp_path):
    """A 20 M-token training file against a 1 M-token one: the CPT job's peak RSS differs by at most 64 MiB
    (a split held in memory as int64 would add 150 MiB)."""
    model = quick_run / "results/models/llama_pro"
    tokenizer = load_tokenizer(model)
    val = fake_token_file(tmp_path / "val.bin", 20_000, tokenizer, 0)
    cfg = {"steps": 3, "batch_size": 4, "seq_len": 32, "lr": 1e-3, "warmup_steps": 1, "weight_decay": 0.0,
           "grad_clip": 1.0, "schedule": "cosine", "eval_interval": 3, "eval_tokens": 1024, "checkpoint_interval": 100,
           "keep_checkpoints": False, "plateau": None, "seed": 0, "freeze": "new_only"}
    peak = {}
    for n in (1_000_000, 20_000_000):
        train = fake_token_file(tmp_path / f"train{n}.bin", n, tokenizer, 1)
        code = PEAK_RSS.format(repo=str(REPO), model=str(model), train=str(train), val=str(val), cfg=json.dumps(cfg),
                               work=str(tmp_path / f"cpt{n}"))
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        peak[n] = int(out.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    assert peak[20_000_000] - peak[1_000_000] <= 64, peak
