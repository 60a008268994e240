"""DLO: an expanded Llama whose layers can skip their MLP per token, by learned routers.

Every routed decoder layer gets a router r_l = Linear(d, 1, no bias), initialised to zero, and
s = σ(r_l · h) for the hidden state h entering the layer's MLP block; the first and last
``unrouted_edge_layers`` layers have none and run their MLP for every token. Attention runs for every
token. A routed MLP runs for the selected tokens only, which get h + λ(s)·MLP(norm(h)) with
λ(s) = 1 + (s − 0.5)·0.05, so that the language-model loss reaches the router; the others keep h.

* training: layer l selects its top ⌈c_l·N⌉ tokens by s (N real tokens in the batch: padding never
  runs a routed MLP and is never labelled). Router labels come without gradient from the cosine
  similarity of each token's h before and after the MLP, pooled over the routed layers: the lowest
  ⌈c̄·N·L⌉ similarities (the tokens whose MLP changes them most) are label 1.
  loss = CE + bce_weight · BCE(s, label). The capacity c̄ anneals from 1 to ``capacity`` over the first
  ``anneal_steps`` steps, and each layer's c_l follows the fraction of its tokens labelled 1.
* inference: a token runs the MLP where s > 0.5.
* ``routing`` = "all" or "none" forces every token through or past the MLP (λ = 1): the dense model, or
  attention only.

The classes register with transformers' Auto classes under model_type ``deepen_dlo`` when this module
is imported, so ``AutoModelForCausalLM.from_pretrained`` (and lm-eval's HFLM) load a saved directory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaForCausalLM, LlamaModel

LAMBDA_SLOPE = 0.05
ROUTING_MODES = ("learned", "all", "none")


class DLOConfig(LlamaConfig):
    model_type = "deepen_dlo"

    def __init__(self, capacity: float = 0.9, anneal_steps: int = 100, bce_weight: float = 1.0,
                 layer_capacities: list[float] | None = None, routing: str = "learned", unrouted_edge_layers: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        if 2 * unrouted_edge_layers >= self.num_hidden_layers:
            raise ValueError(f"unrouted_edge_layers={unrouted_edge_layers} leaves no routed layer of "
                             f"{self.num_hidden_layers}")
        self.unrouted_edge_layers = unrouted_edge_layers
        self.capacity = capacity
        self.anneal_steps = anneal_steps
        self.bce_weight = bce_weight
        self.layer_capacities = layer_capacities
        self.routing = routing


def router_labels(similarities: torch.Tensor, capacity: float, real: torch.Tensor | None = None) -> torch.Tensor:
    """Label 1 for the lowest ⌈capacity·N·L⌉ of the (L, N) similarities, pooled over layers; with ``real``
    (N,) given, N counts real tokens only and padding is never labelled."""
    if real is not None:
        similarities = similarities.masked_fill(~real.bool()[None, :], math.inf)
        n = int(real.sum()) * similarities.shape[0]
    else:
        n = similarities.numel()
    flat = similarities.flatten()
    k = min(n, math.ceil(capacity * n))
    labels = torch.zeros_like(flat, dtype=torch.bool)
    labels[torch.topk(flat, k, largest=False).indices] = True
    return labels.view_as(similarities)


def annealed_capacity(step: int, final: float, anneal_steps: int) -> float:
    """c̄ at ``step``: 1.0 at the start, ``final`` from ``anneal_steps`` on, linear in between."""
    if anneal_steps <= 0:
        return final
    return 1.0 - (1.0 - final) * min(1.0, step / anneal_steps)


class DLODecoderLayer(LlamaDecoderLayer):
    def __init__(self, config: DLOConfig, layer_idx: int):
        super().__init__(config, layer_idx)
        edge = config.unrouted_edge_layers
        # The first and last ``edge`` layers run their MLP for every token and have no router.
        self.routed = edge <= layer_idx < config.num_hidden_layers - edge
        if self.routed:
            self.router = nn.Linear(config.hidden_size, 1, bias=False)
            self.router.is_dlo_router = True
        self.routing = config.routing
        self.capacity = 1.0
        self.record = None  # (scores, similarities) of the last training forward, for the loss
        self.executed = None  # fraction of the real tokens that ran the MLP in the last forward
        self.selected = None  # which tokens did, (B, T), when routed
        self.token_mask = None  # (B, T): 1 for real tokens, 0 for padding; set by the model's forward

    def executed_real(self, attention_mask: torch.Tensor) -> int:
        """How many of the tokens ``attention_mask`` marks as real ran the MLP in the last forward."""
        if self.selected is None:
            return int(attention_mask.sum()) if self.executed else 0
        return int((self.selected & attention_mask.bool()).sum())

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, position_embeddings=None, **kwargs):
        residual = hidden_states
        attn, _ = self.self_attn(hidden_states=self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                 position_ids=position_ids, past_key_values=past_key_values, use_cache=use_cache,
                                 position_embeddings=position_embeddings, **kwargs)
        h = residual + attn
        if self.routing == "all" or (self.routing == "learned" and not self.routed):
            self.executed, self.selected = 1.0, None
            return h + self.mlp(self.post_attention_layernorm(h))
        if self.routing == "none":
            self.executed, self.selected = 0.0, None
            return h
        scores = torch.sigmoid(self.router(h)).squeeze(-1)  # (B, T)
        flat_h, flat_s = h.reshape(-1, h.shape[-1]), scores.reshape(-1)
        # Padding neither runs the MLP nor takes a share of the capacity or the labels: with short
        # instructions it can be most of a batch, and it would teach the routers about pad tokens.
        if self.token_mask is None:
            real = torch.ones_like(flat_s, dtype=torch.bool)
        else:
            real = self.token_mask[:, -scores.shape[1]:].reshape(-1).bool()
        n_real = max(1, int(real.sum()))
        if self.training:
            k = max(1, math.ceil(self.capacity * n_real))
            selected = torch.zeros_like(flat_s, dtype=torch.bool)
            selected[torch.topk(flat_s.masked_fill(~real, -1.0), k).indices] = True
            selected &= real
        else:
            selected = (flat_s > 0.5) & real
        self.executed = selected.sum().item() / n_real
        self.selected = selected.view(scores.shape)
        scale = (1 + (flat_s - 0.5) * LAMBDA_SLOPE).unsqueeze(-1)  # λ(s)
        if selected.all():  # no gather and scatter where every token runs the MLP
            out = flat_h + scale * self.mlp(self.post_attention_layernorm(flat_h))
        else:
            out = flat_h.clone()
            if selected.any():
                x = flat_h[selected]
                out[selected] = x + scale[selected] * self.mlp(self.post_attention_layernorm(x))
        if self.training:
            with torch.no_grad():  # labels: how much the MLP would change each token
                full = flat_h + self.mlp(self.post_attention_layernorm(flat_h))
                similarity = F.cosine_similarity(flat_h, full, dim=-1)
            self.record = (flat_s, similarity, real)
        return out.view_as(h)


def _init_weights(self, module):
    LlamaForCausalLM._init_weights(self, module)
    if getattr(module, "is_dlo_router", False):
        nn.init.zeros_(module.weight)  # s = 0.5 everywhere: no preference at the start


class DLOModel(LlamaModel):
    config_class = DLOConfig
    _init_weights = _init_weights

    def __init__(self, config: DLOConfig):
        super().__init__(config)
        self.layers = nn.ModuleList(DLODecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.post_init()


class DLOForCausalLM(LlamaForCausalLM):
    config_class = DLOConfig

    def __init__(self, config: DLOConfig):
        super().__init__(config)
        self.model = DLOModel(config)
        self.train_step = 0
        self.router_loss = None
        self.set_routing(config.routing)
        self.post_init()
        if config.layer_capacities:
            for layer, c in zip(self.routed_layers(), config.layer_capacities):
                layer.capacity = c

    _init_weights = _init_weights

    def routed_layers(self) -> list[DLODecoderLayer]:
        return [layer for layer in self.model.layers if layer.routed]

    def set_routing(self, mode: str) -> None:
        if mode not in ROUTING_MODES:
            raise ValueError(f"routing must be one of {ROUTING_MODES}, got {mode!r}")
        self.config.routing = mode
        for layer in self.model.layers:
            layer.routing = mode

    def execution_rates(self) -> list[float]:
        """Per layer, the fraction of tokens that ran the MLP in the last forward pass."""
        return [layer.executed for layer in self.model.layers]

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        for layer in self.model.layers:
            layer.token_mask = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
        layers = self.routed_layers()
        if self.training and self.config.routing == "learned" and labels is not None and layers:
            scores = torch.stack([layer.record[0] for layer in layers])
            similarities = torch.stack([layer.record[1] for layer in layers])
            real = layers[0].record[2]
            capacity = annealed_capacity(self.train_step, self.config.capacity, self.config.anneal_steps)
            targets = router_labels(similarities, capacity, real)
            self.router_loss = F.binary_cross_entropy(scores[:, real], targets[:, real].float())
            out.loss = out.loss + self.config.bce_weight * self.router_loss
            with torch.no_grad():  # each layer's capacity follows its share of label-1 tokens
                fractions = targets[:, real].float().mean(dim=1).tolist()
            for layer, c in zip(layers, fractions):
                layer.capacity = c
            self.config.layer_capacities = fractions
            self.train_step += 1
            for layer in layers:
                layer.record = None
        return out


AutoConfig.register(DLOConfig.model_type, DLOConfig, exist_ok=True)
AutoModelForCausalLM.register(DLOConfig, DLOForCausalLM, exist_ok=True)


def from_dense(dense_dir, **dlo_options) -> DLOForCausalLM:
    """A DLO model over a dense (e.g. LLaMA Pro-expanded) Llama directory: same weights, zero routers."""
    config = AutoConfig.from_pretrained(str(dense_dir))
    if config.model_type != "llama":
        raise ValueError(f"DLO wraps Llama models; {dense_dir} is {config.model_type!r}")
    settings = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures", "transformers_version")}
    dlo_config = DLOConfig(**{**settings, **dlo_options})
    return DLOForCausalLM.from_pretrained(str(dense_dir), config=dlo_config, dtype=torch.float32)


def inference_speed(model, dataset, batch_size: int, routed: bool, repeats: int = 5) -> dict:
    """Per-layer MLP execution rates over the real tokens of ``dataset``'s padded examples, and tokens/s of
    forward passes (best of ``repeats``) over the same real tokens packed into full rows, so that padding
    costs no pass anything; for a DLO model also the tokens/s of the same weights with every MLP executed
    (dense) and with none (attention only), and the MLPs' share of the dense pass's time."""
    import time

    items = [dataset[i] for i in range(len(dataset))]
    seq_len = items[0]["input_ids"].shape[0]
    rates = []
    if routed:
        executed, tokens = None, 0
        with torch.no_grad():
            for i in range(0, len(items), batch_size):
                b = {k: torch.stack([it[k] for it in items[i:i + batch_size]]) for k in ("input_ids", "attention_mask")}
                model(**b)
                per_layer = [layer.executed_real(b["attention_mask"]) for layer in model.model.layers]
                executed = per_layer if executed is None else [a + c for a, c in zip(executed, per_layer)]
                tokens += int(b["attention_mask"].sum())
        rates = [e / tokens for e in executed]

    real = torch.cat([it["input_ids"][it["attention_mask"].bool()] for it in items])
    rows = real[: len(real) // seq_len * seq_len].view(-1, seq_len)
    n_tokens = rows.numel()

    def timed() -> float:
        t = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                chunk = rows[i:i + batch_size]
                model(input_ids=chunk, attention_mask=torch.ones_like(chunk))
        return time.perf_counter() - t

    # Routed, dense and attention-only passes alternate, so that a slow spell of the machine falls on
    # all three; best of each. Attention only bounds what skipping MLPs could ever save.
    modes = ["learned", "all", "none"] if routed else ["learned"]
    best = dict.fromkeys(modes, float("inf"))
    for _ in range(repeats):
        for mode in modes:
            if routed:
                model.set_routing(mode)
            best[mode] = min(best[mode], timed())
    if routed:
        model.set_routing("learned")
    out = {"tokens_per_second": n_tokens / best["learned"], "execution_rates": rates,
           "skipped_fraction": 1 - sum(rates) / len(rates) if rates else 0.0}
    if routed:
        out["dense_tokens_per_second"] = n_tokens / best["all"]
        out["attention_only_tokens_per_second"] = n_tokens / best["none"]
        out["speed_ratio"] = best["all"] / best["learned"]
        # the share of a dense forward pass spent in the MLPs
        out["mlp_time_share"] = 1 - best["none"] / best["all"]
    return out
