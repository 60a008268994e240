"""The tiny Llama the embedded default pretrains, and loading of HF causal LMs."""

from __future__ import annotations

import torch


def tiny_llama_config(model_cfg: dict, tokenizer):
    from transformers import LlamaConfig

    hidden, heads = model_cfg["hidden_size"], model_cfg["num_attention_heads"]
    if hidden % heads:
        raise ValueError(f"base.model: hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=model_cfg["intermediate_size"],
        num_hidden_layers=model_cfg["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=model_cfg.get("num_key_value_heads", heads),
        max_position_embeddings=model_cfg["max_position_embeddings"],
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def init_tiny_llama(model_cfg: dict, tokenizer, seed: int):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(model_cfg, tokenizer))


def load_causal_lm(path, device=None, dtype=torch.float32):
    """A model directory as a causal LM, in ``dtype`` (float32 unless a stage's device says otherwise:
    deepen.core.device), on ``device`` (the CPU by default)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    return model.to(device) if device is not None else model


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
