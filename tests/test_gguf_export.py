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
