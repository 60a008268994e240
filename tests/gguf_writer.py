"""Write an HF model and its tokenizer as a GGUF file the way llama.cpp's converter lays it out, with the
``gguf`` package's writer: tensor names, metadata keys, Llama's interleaved q/k rows and Gemma's 1 + w
norms. The names and transforms are written out here independently of deepen's importer, so a test that
imports the file checks the importer against the format, not against itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2",
             "gemma3_text": "gemma3"}

LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
LLAMA_ONLY = {"post_attention_layernorm.weight": "ffn_norm.weight"}
GEMMA_ONLY = {"post_attention_layernorm.weight": "post_attention_norm.weight",
              "pre_feedforward_layernorm.weight": "ffn_norm.weight",
              "post_feedforward_layernorm.weight": "post_ffw_norm.weight"}


def interleave_rotary_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's permute(): per head, the first and second rotary halves' rows interleaved."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(hf_name: str, gemma: bool) -> str:
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf_name in fixed:
        return fixed[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    names = {**LAYER_NAMES, **(GEMMA_ONLY if gemma else LLAMA_ONLY)}
    return f"blk.{layer}.{names[rest]}"


def tokenizer_metadata(tokenizer_dir) -> tuple[list[str], list[int], list[str], dict]:
    """Tokens by id, their GGUF token types, merges as 'a b' strings, special token ids."""
    data = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    specials = {t["id"]: t["content"] for t in data.get("added_tokens", [])}
    size = max([*vocab.values(), *specials]) + 1
    tokens = [""] * size
    for token, i in vocab.items():
        tokens[i] = token
    for i, content in specials.items():
        tokens[i] = content
    types = [3 if i in specials else 1 for i in range(size)]  # 3: control, 1: normal
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    config = json.loads((Path(tokenizer_dir) / "tokenizer_config.json").read_text())
    ids = {name: tokens.index(config[name]) for name in ("bos_token", "eos_token", "pad_token", "unk_token")
           if isinstance(config.get(name), str) and config[name] in tokens}
    return tokens, types, merges, ids


def write_gguf(model, tokenizer_dir, path, quant: str | None = None, arch: str | None = None,
               state: dict | None = None) -> Path:
    """``model``'s weights (or ``state``) as GGUF: float32, or every 2-D weight in block type ``quant``."""
    import gguf

    cfg = model.config
    gguf_arch = arch or GGUF_ARCH[cfg.model_type]
    gemma = gguf_arch.startswith("gemma")
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    w = gguf.GGUFWriter(str(path), gguf_arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    rope = cfg.rope_parameters
    if gguf_arch == "gemma3":
        w.add_rope_freq_base(rope["full_attention"]["rope_theta"])
        w.add_sliding_window(cfg.sliding_window)
    else:
        w.add_rope_freq_base(rope["rope_theta"])
    if gguf_arch == "llama":
        w.add_rope_dimension_count(head_dim)
    if gguf_arch == "gemma2":
        w.add_sliding_window(cfg.sliding_window)
        w.add_attn_logit_softcapping(cfg.attn_logit_softcapping)
        w.add_final_logit_softcapping(cfg.final_logit_softcapping)
    tokens, types, merges, ids = tokenizer_metadata(tokenizer_dir)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for name, setter in (("bos_token", w.add_bos_token_id), ("eos_token", w.add_eos_token_id),
                         ("pad_token", w.add_pad_token_id), ("unk_token", w.add_unk_token_id)):
        if name in ids:
            setter(ids[name])
    state = state if state is not None else {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    tied = getattr(cfg, "tie_word_embeddings", False)
    for hf_name, t in state.items():
        if tied and hf_name == "lm_head.weight":
            continue
        name = gguf_name(hf_name, gemma)
        t = np.ascontiguousarray(t, dtype=np.float32)
        if gguf_arch == "llama" and (".attn_q." in name or ".attn_k." in name):
            t = interleave_rotary_rows(t, heads if ".attn_q." in name else kv)
        if gemma and name.endswith("norm.weight"):
            t = t + 1.0
        if quant and t.ndim == 2:
            qtype = gguf.GGMLQuantizationType[quant]
            w.add_tensor(name, gguf.quants.quantize(t, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def dequantized_state(model, quant: str) -> dict:
    """The state dict as the quantised GGUF holds it: every 2-D weight through quantize and dequantize."""
    import gguf

    qtype = gguf.GGMLQuantizationType[quant]
    out = {}
    for k, v in model.state_dict().items():
        t = v.detach().float().numpy()
        out[k] = gguf.quants.dequantize(gguf.quants.quantize(t, qtype), qtype) if t.ndim == 2 else t
    return out
