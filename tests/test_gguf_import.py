"""GGUF import: tiny random models of every supported family written as GGUF files (tests/gguf_writer.py)
import as HF directories with the source's logits and tokenizer; broken files stop with their path."""

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from deepen.models.gguf_import import gguf_source, hf_config, import_gguf
from deepen.models.gguf_file import GGUFError, read_header
from deepen.data.tokenizer import train_tokenizer
from gguf_writer import dequantized_state, write_gguf

TEXT = ("When forty winters shall besiege thy brow, and dig deep trenches in thy beauty's field, thy youth's proud "
        "livery so gazed on now will be a tatter'd weed of small worth held. 1234 5678!\n") * 40
SIZES = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64)
FAMILIES = ["llama", "llama_tied", "mistral", "qwen2", "qwen3", "gemma2", "gemma3"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf_tok")
    (root / "train.txt").write_text(TEXT)
    train_tokenizer(root / "train.txt", 300, root / "tok")
    return root / "tok"


def family_model(family: str, vocab: int, sizes: dict = SIZES):
    import transformers as tf

    sizes = {**sizes, "vocab_size": vocab}
    if family in ("llama", "llama_tied"):
        config = tf.LlamaConfig(**sizes, tie_word_embeddings=family == "llama_tied")
    elif family == "mistral":
        config = tf.MistralConfig(**sizes, sliding_window=None, tie_word_embeddings=False)
    elif family == "qwen2":
        config = tf.Qwen2Config(**sizes, tie_word_embeddings=False)
    elif family == "qwen3":
        config = tf.Qwen3Config(**sizes, head_dim=16, tie_word_embeddings=False)
    elif family == "gemma2":
        config = tf.Gemma2Config(**sizes, head_dim=8, query_pre_attn_scalar=8, sliding_window=16)
    elif family == "gemma3":
        config = tf.Gemma3TextConfig(**sizes, head_dim=8, query_pre_attn_scalar=8, sliding_window=16)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # random norms and biases, so a norm or bias carried wrongly shows in the logits
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(-0.5, 0.5) if family.startswith("gemma") else p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    return model


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_imported_model_gives_the_source_logits_and_tokens(family, tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    source = family_model(family, len(tok))
    path = write_gguf(source, tokenizer_dir, tmp_path / f"{family}.gguf")
    info = import_gguf(path, tmp_path / "imported")
    imported = AutoModelForCausalLM.from_pretrained(tmp_path / "imported", dtype=torch.float32).eval()
    ids = torch.randint(0, len(tok), (2, 20), generator=torch.Generator().manual_seed(1))
    assert (logits(imported, ids) - logits(source, ids)).abs().max().item() <= 1e-5
    assert info["layers"] == 6 and info["tensor_types"] == {"F32": len(read_header(path).tensors)}
    assert info["parameters"] == sum(p.numel() for p in source.parameters())
    tied = family in ("llama_tied", "gemma2", "gemma3")
    assert imported.config.tie_word_embeddings is tied and info["tied_embeddings"] is tied
    assert (imported.lm_head.weight.data_ptr() == imported.model.embed_tokens.weight.data_ptr()) is tied
    # No digits: transformers splits numbers by the architecture's own pre-tokenizer rule (Qwen2: one per digit)
    sample = "Thy youth's proud livery, so gazed on!"
    imported_tok = AutoTokenizer.from_pretrained(tmp_path / "imported")
    assert imported_tok(sample)["input_ids"] == tok(sample)["input_ids"]
    assert imported_tok.eos_token == tok.eos_token


def test_a_quantised_file_imports_as_its_dequantised_weights(tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    sizes = {**SIZES, "hidden_size": 64, "intermediate_size": 128}
    source = family_model("llama", len(tok), sizes)
    for quant in ("Q8_0", "Q4_1", "Q4_0"):
        path = write_gguf(source, tokenizer_dir, tmp_path / f"{quant}.gguf", quant=quant)
        import_gguf(path, tmp_path / quant)
        expected = family_model("llama", len(tok), sizes)
        expected.load_state_dict({k: torch.from_numpy(v) for k, v in dequantized_state(source, quant).items()})
        imported = AutoModelForCausalLM.from_pretrained(tmp_path / quant, dtype=torch.float32).eval()
        ids = torch.randint(0, len(tok), (2, 20), generator=torch.Generator().manual_seed(2))
        assert (logits(imported, ids) - logits(expected, ids)).abs().max().item() <= 1e-5, quant
        assert (logits(imported, ids) - logits(source, ids)).abs().max().item() > 1e-4  # it was quantised


def test_config_comes_from_the_metadata_alone(tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    path = write_gguf(family_model("gemma3", len(tok)), tokenizer_dir, tmp_path / "g3.gguf")
    config = hf_config(read_header(path))
    assert config["model_type"] == "gemma3_text" and config["num_hidden_layers"] == 6
    assert config["layer_types"] == ["sliding_attention"] * 5 + ["full_attention"]
    assert config["rope_parameters"]["sliding_attention"]["rope_theta"] == 10000.0


@pytest.fixture(scope="module")
def llama_gguf(tokenizer_dir, tmp_path_factory):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return write_gguf(family_model("llama", len(tok)), tokenizer_dir, tmp_path_factory.mktemp("g") / "llama.gguf")


def test_a_truncated_file_is_named_with_what_is_missing(llama_gguf, tmp_path):
    data = llama_gguf.read_bytes()
    for keep in (len(data) - 100, 2000, 30):
        cut = tmp_path / f"cut{keep}.gguf"
        cut.write_bytes(data[:keep])
        with pytest.raises(GGUFError, match="truncated") as err:
            read_header(cut)
        assert str(cut) in str(err.value)
        with pytest.raises(GGUFError, match="truncated"):
            import_gguf(cut, tmp_path / f"out{keep}")
        assert not (tmp_path / f"out{keep}").exists()


def test_corrupt_files_are_refused_with_their_path(llama_gguf, tmp_path):
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(GGUFError, match="not a GGUF file") as err:
        read_header(not_gguf)
    assert str(not_gguf) in str(err.value)
    data = bytearray(llama_gguf.read_bytes())
    data[16:24] = (10**12).to_bytes(8, "little")  # the metadata count, absurd
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="corrupt") as err:
        read_header(bad)
    assert str(bad) in str(err.value)


def test_an_architecture_without_adapter_is_named(tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    path = write_gguf(family_model("llama", len(tok)), tokenizer_dir, tmp_path / "phi.gguf", arch="phi3")
    with pytest.raises(GGUFError, match="'phi3' has no adapter") as err:
        import_gguf(path, tmp_path / "out")
    assert str(path) in str(err.value) and "gemma2, gemma3, llama, qwen2, qwen3" in str(err.value)


def test_package_source_finds_the_file_or_says_what_is_missing(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_gguf_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "only.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gguf_source({"package": "fake-gguf-pkg"}) == pkg / "only.gguf"
    with pytest.raises(GGUFError, match="no file 'other.gguf'"):
        gguf_source({"package": "fake-gguf-pkg", "file": "other.gguf"})
    with pytest.raises(GGUFError, match="not installed"):
        gguf_source({"package": "no-such-package-here"})
