"""GGUF out (deepen/models/gguf_export.py): the file deepen writes reads back, through gguf's reader and deepen's
importer, as the model it came from: every tensor equal to its value rounded to the file's type (float16 rounding:
a relative error of at most 2^-11; norms and other vectors are float32 and exact), the same tokens, the chat
template, and next-token log-probs within a stated tolerance. llama.cpp's own reading of the file is measured by
benchmarks/llama_cpp_check.py (llama-cpp-python is not a dependency)."""

import json
import os

import pytest
import torch

from deepen.models.gguf_export import export_gguf, export_problems, modelfile, tokenizer_problems
from deepen.models.gguf_file import GGUFError
from deepen.models.gguf_import import import_gguf

PROMPT = "Shall I compare thee to a summer's day?"
# max |log p(HF) - log p(read back)| over the vocabulary and the prompt's positions, measured: 3e-4 (f16, the tiny
# model), 0.04 (f16, SmolLM2), 0.21 (bf16, SmolLM2); a wrong tensor or row order moves them by whole nats
F16_LOGPROB_TOLERANCE = 0.01


def _logprobs(model_dir, text=PROMPT):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        return tok(text)["input_ids"], model(ids).logits.log_softmax(-1)[0], tok


def test_round_trip_gives_the_tensors_rounded_to_f16_and_the_same_logprobs(tiny_bpe_llama_dir, tmp_path):
    from deepen.models.tensorio import CheckpointReader

    info = export_gguf(tiny_bpe_llama_dir, tmp_path / "m.gguf", "f16")
    assert info["tensor_types"] == {"f16": 1 + 7 * 4, "f32": 2 * 4 + 1}
    import_gguf(tmp_path / "m.gguf", tmp_path / "back")
    src, back = CheckpointReader(tiny_bpe_llama_dir), CheckpointReader(tmp_path / "back")
    for name in back.keys():
        w, r = src.get(name).float(), back.get(name).float()
        expected = w if w.dim() == 1 else w.half().float()
        assert torch.equal(r, expected), name
    ids, a, tok = _logprobs(tiny_bpe_llama_dir)
    ids_back, b, tok_back = _logprobs(tmp_path / "back")
    assert ids_back == ids
    assert tok_back.chat_template == tok.chat_template
    assert float((a - b).abs().max()) < F16_LOGPROB_TOLERANCE


@pytest.mark.parametrize("gguf_type, tolerance", [("bf16", 0.05), ("q8_0", 0.05), ("f32", 1e-5)])
def test_other_types_read_back_within_their_rounding(tiny_bpe_llama_dir, tmp_path, gguf_type, tolerance):
    info = export_gguf(tiny_bpe_llama_dir, tmp_path / "m.gguf", gguf_type)
    assert gguf_type in info["tensor_types"]
    import_gguf(tmp_path / "m.gguf", tmp_path / "back")
    _, a, _ = _logprobs(tiny_bpe_llama_dir)
    _, b, _ = _logprobs(tmp_path / "back")
    assert float((a - b).abs().max()) < tolerance


def test_an_untied_head_is_written_and_read_back(tmp_path):
    from conftest import save_tiny_bpe_llama

    model = save_tiny_bpe_llama(tmp_path / "untied", layers=2, tie=False)
    info = export_gguf(model, tmp_path / "m.gguf", "f32")
    assert info["tensors"] == 1 + 2 * 9 + 2
    import_gguf(tmp_path / "m.gguf", tmp_path / "back")
    _, a, _ = _logprobs(model)
    _, b, _ = _logprobs(tmp_path / "back")
    assert float((a - b).abs().max()) < 1e-5


def test_what_cannot_be_exported_is_refused_with_the_reason(tiny_bpe_llama_dir, tmp_path):
    config = json.loads((tiny_bpe_llama_dir / "config.json").read_text())
    assert export_problems(config, "q4_k") == ["GGUF type 'q4_k' is not one of f32, f16, bf16, q8_0"]
    assert "no GGUF layout" in export_problems({**config, "model_type": "gpt2"}, "f16")[0] or \
        "not supported" in export_problems({**config, "model_type": "gpt2"}, "f16")[0]
    yarn = {**config, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}
    assert export_problems(yarn, "f16") == ["RoPE type 'yarn' is not exported (default and linear are)"]
    # a SentencePiece vocabulary (byte fallback) needs its scores
    spm = tmp_path / "spm"
    spm.mkdir()
    tok = json.loads((tiny_bpe_llama_dir / "tokenizer.json").read_text())
    tok["model"]["byte_fallback"] = True
    (spm / "tokenizer.json").write_text(json.dumps(tok))
    assert "SentencePiece" in tokenizer_problems(spm)[0]
    for f in ("config.json", "model.safetensors"):
        os.link(tiny_bpe_llama_dir / f, spm / f)
    with pytest.raises(GGUFError, match="SentencePiece"):
        export_gguf(spm, tmp_path / "spm.gguf", "f16")
    assert not (tmp_path / "spm.gguf").exists()


def test_the_modelfile_names_the_file_and_a_template_only_without_a_chat_template():
    with_chat = modelfile("lesa.gguf", chat_template=True)
    assert "FROM ./lesa.gguf" in with_chat and "TEMPLATE" not in with_chat
    assert 'TEMPLATE "{{ .Prompt }}"' in modelfile("lesa.gguf", chat_template=False)


def test_the_quick_run_exports_hub_ready_folders(quick_run, tmp_path):
    """config/quick.yaml exports a computed row at step 0 and a copy-made row after CPT: each GGUF reads back as its
    model (q8_0: log-probs within 0.05), each folder's card has the Hub's metadata and the run's figures, and every
    model folder the run wrote has a card whose metadata block parses."""
    from deepen.models.card import front_matter

    results = quick_run / "results"
    for name, source, relation in (("lesa", results / "models/lesa", "merge"),
                                   ("llama_pro-new_only", results / "cpt/llama_pro/new_only/seed0/final", "finetune")):
        import_gguf(results / f"export/{name}.gguf", tmp_path / name)
        _, a, _ = _logprobs(source)
        _, b, _ = _logprobs(tmp_path / name)
        assert float((a - b).abs().max()) < 0.05, name
        card = (results / f"export/{name}/README.md").read_text()
        meta = front_matter(card)
        assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
        assert "depth-up-scaling" in meta["tags"] and name.split("-")[0] in meta["tags"]
        assert "base_model" not in meta  # the quick base is trained here: no Hub name to give
        assert "val loss at step 0" in card
        assert "deepen's code: commit" in card or "deepen's code: source digest" in card
        if relation == "finetune":
            assert "val loss after CPT (1 seed(s))" in card
        assert (results / f"export/{name}/{name}.gguf").exists()
        assert f"FROM ./{name}.gguf" in (results / f"export/{name}.Modelfile").read_text()
    cards = sorted((results / "models").rglob("README.md"))
    assert len(cards) >= 11  # every expanded model of quick.yaml
    for path in cards:
        assert front_matter(path.read_text())["tags"][:2] == ["deepen", "depth-up-scaling"], path
