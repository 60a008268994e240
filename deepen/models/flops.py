"""Training FLOPs per token of a decoder whose trainable part may be a subset of its layers.

Counting (matrix multiplies only, 2 FLOPs per multiply-add, as in Kaplan et al. 2020):

* forward: 2 · (weights of every layer + lm_head) + the attention scores and mixing, 4 · seq · d per layer
  (causal masking is not subtracted, the usual convention);
* backward, gradients of activations: the same as the forward for every matrix at or above the lowest
  trainable layer (the gradient has to travel from the loss down to it), nothing below; the attention
  core, which has no weights, costs twice its forward there (gradients of both of its operands);
* backward, gradients of weights: 2 · (trainable matrix weights).

With everything trainable this is the familiar 6 N + 12 · layers · seq · d per token; training only the
new layers near the top of the stack costs much less, which is what a compute axis must show.
"""

from __future__ import annotations


def layer_matmul_params(config: dict) -> int:
    """Weights of one decoder layer's matrix multiplies (q, k, v, o, gate, up, down)."""
    h, i = config["hidden_size"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or h // heads
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2
    return attention + 3 * h * i


def training_flops_per_token(config: dict, seq_len: int, trainable_layers: list[int] | None,
                             freeze: str) -> float:
    """FLOPs of one training token. ``freeze`` 'all' trains every parameter; 'new_only' only
    ``trainable_layers`` (indices into the model's layers)."""
    L, h = config["num_hidden_layers"], config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or h // heads
    attention_core = 4 * seq_len * heads * head_dim  # scores and mixing; no weights, backward twice this
    matmuls = 2 * layer_matmul_params(config)
    lm_head = 2 * config["vocab_size"] * h
    forward = L * (matmuls + attention_core) + lm_head
    if freeze == "all":
        lowest, trainable_weights = 0, L * layer_matmul_params(config) + config["vocab_size"] * h
    elif freeze == "new_only":
        if not trainable_layers:
            raise ValueError("freeze 'new_only' needs the trainable layers")
        lowest, trainable_weights = min(trainable_layers), len(trainable_layers) * layer_matmul_params(config)
    else:
        raise ValueError(f"unknown freeze policy {freeze!r}")
    activation_grads = (L - lowest) * (matmuls + 2 * attention_core) + lm_head
    return float(forward + activation_grads + 2 * trainable_weights)
