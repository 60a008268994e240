"""Model families as data: one entry per family says where each per-layer tensor lives in an HF checkpoint, which
are norms, biases and residual outputs, how each tensor moves when heads and neurons are re-ordered (the aligned
base), and how llama.cpp's GGUF files name and change them. Adding a family is adding one entry (``register``).

Every method talks about matrix *types* (``q_proj``, ``gate_proj``, ``input_layernorm`` …); this module is the one
place that maps them to tensor names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LAYER_KEY = re.compile(r"^(?P<prefix>.*\.layers)\.(?P<index>\d+)\.(?P<rest>.+)$")

# How a tensor moves when a layer's heads and neurons are re-ordered: by query head (rows or, for o_proj, columns),
# by KV group, or by MLP neuron. A per-layer tensor not listed must be a norm no permutation indexes.
ROWS_BY_HEAD, ROWS_BY_GROUP, COLUMNS_BY_HEAD, ROWS_BY_NEURON, COLUMNS_BY_NEURON = (
    "rows by head", "rows by group", "columns by head", "rows by neuron", "columns by neuron")
LLAMA_MOVES = {"q_proj": ROWS_BY_HEAD, "q_bias": ROWS_BY_HEAD, "k_proj": ROWS_BY_GROUP, "k_bias": ROWS_BY_GROUP,
               "v_proj": ROWS_BY_GROUP, "v_bias": ROWS_BY_GROUP, "o_proj": COLUMNS_BY_HEAD,
               "gate_proj": ROWS_BY_NEURON, "up_proj": ROWS_BY_NEURON, "down_proj": COLUMNS_BY_NEURON}


@dataclass(frozen=True)
class GGUFLayout:
    """How llama.cpp's files hold a family: its architecture name, per-layer tensor names (GGUF -> matrix type),
    config fields beyond the common ones (HF field -> metadata key after "{arch}."), and what its converter changed."""

    arch: str
    layer_tensors: dict[str, str]
    config_keys: dict[str, str] = field(default_factory=dict)
    # the converter interleaves the rotary halves of each q and k head for its rope kernel
    interleaved_qk: bool = False
    # norm weights stored as 1 + w (the family scales by 1 + w)
    norms_plus_one: bool = False
    # sliding-window attention layer pattern: every n-th layer attends globally
    global_every: int | None = None
    # queries scaled by 1/sqrt(head_dim) (what query_pre_attn_scalar says for Gemma)
    query_scale_head_dim: bool = False
    # a second RoPE base for the sliding-window layers (metadata rope.freq_base_swa)
    local_rope: bool = False
    # config fields the HF class must get that the metadata does not hold
    config_overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """One model family: the model types of its config.json, where its per-layer tensors live, which are norms,
    biases and residual outputs, its transformers class, how its tensors move with heads and neurons, and how GGUF
    files hold it."""

    model_types: tuple[str, ...]
    layer_prefix: str
    # matrix type -> tensor name inside one decoder layer
    layer_tensors: dict[str, str]
    # matrices that are the residual-stream outputs of a block; zeroing them makes the block the identity
    output_matrices: tuple[str, ...] = ("o_proj", "down_proj")
    # per-layer norm weights (every vector that scales activations)
    norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")
    # per-layer bias vectors, each belonging to the rows of one matrix
    biases: dict[str, str] = field(default_factory=dict)
    # the norm weight that leaves activations unscaled: 1, or 0 where the model multiplies by (1 + weight)
    norm_identity: float = 1.0
    # the norm in front of the MLP, which reads the residual stream (OpT-DeUS maps it with the stream)
    mlp_input_norm: str = "post_attention_layernorm"
    # norms applied to a block's output before it joins the residual stream (Gemma 2): they scale the
    # channels that o_proj's and down_proj's rows write
    output_norms: tuple[str, ...] = ()
    # transformers' causal-LM class (config.json's "architectures")
    hf_class: str = "LlamaForCausalLM"
    # how each tensor moves with heads and neurons (the aligned base)
    moves: dict[str, str] = field(default_factory=lambda: dict(LLAMA_MOVES))
    # how GGUF files hold the family; None: not imported from GGUF
    gguf: GGUFLayout | None = None

    @property
    def matrices(self) -> list[str]:
        return list(self.layer_tensors)

    @property
    def linear(self) -> list[str]:
        """The 2-D weight matrices (what LESA decomposes and predicts)."""
        return [m for m in self.layer_tensors if m not in self.norms and m not in self.biases]

    @property
    def vectors(self) -> list[str]:
        """Norms and biases: 1-D per-layer tensors."""
        return [m for m in self.layer_tensors if m in self.norms or m in self.biases]

    def tensor_name(self, layer: int, matrix: str) -> str:
        return f"{self.layer_prefix}.{layer}.{self.layer_tensors[matrix]}"

    def matrix_of(self, rest: str) -> str | None:
        for matrix, name in self.layer_tensors.items():
            if name == rest:
                return matrix
        return None


LLAMA_TENSORS = {
    "q_proj": "self_attn.q_proj.weight",
    "k_proj": "self_attn.k_proj.weight",
    "v_proj": "self_attn.v_proj.weight",
    "o_proj": "self_attn.o_proj.weight",
    "gate_proj": "mlp.gate_proj.weight",
    "up_proj": "mlp.up_proj.weight",
    "down_proj": "mlp.down_proj.weight",
    "input_layernorm": "input_layernorm.weight",
    "post_attention_layernorm": "post_attention_layernorm.weight",
}

_LLAMA_GGUF = {
    "attn_norm.weight": "input_layernorm", "ffn_norm.weight": "post_attention_layernorm",
    "attn_q.weight": "q_proj", "attn_k.weight": "k_proj", "attn_v.weight": "v_proj", "attn_output.weight": "o_proj",
    "ffn_gate.weight": "gate_proj", "ffn_up.weight": "up_proj", "ffn_down.weight": "down_proj",
}
_GEMMA_GGUF = {
    **_LLAMA_GGUF, "post_attention_norm.weight": "post_attention_layernorm",
    "ffn_norm.weight": "pre_feedforward_layernorm", "post_ffw_norm.weight": "post_feedforward_layernorm",
}
_QK_NORMS_GGUF = {"attn_q_norm.weight": "q_norm", "attn_k_norm.weight": "k_norm"}

# Llama and Mistral share the layout (Mistral differs in sliding-window attention, a config matter).
LLAMA = Family(model_types=("llama", "mistral"), layer_prefix="model.layers", layer_tensors=LLAMA_TENSORS,
               gguf=GGUFLayout("llama", _LLAMA_GGUF, interleaved_qk=True))

# Qwen2: biases on q, k and v.
QWEN2 = Family(
    model_types=("qwen2",), layer_prefix="model.layers",
    layer_tensors={**LLAMA_TENSORS, "q_bias": "self_attn.q_proj.bias", "k_bias": "self_attn.k_proj.bias",
                   "v_bias": "self_attn.v_proj.bias"},
    biases={"q_bias": "q_proj", "k_bias": "k_proj", "v_bias": "v_proj"},
    hf_class="Qwen2ForCausalLM",
    gguf=GGUFLayout("qwen2", {**_LLAMA_GGUF, "attn_q.bias": "q_bias", "attn_k.bias": "k_bias",
                              "attn_v.bias": "v_bias"}),
)

# Qwen3: RMSNorm of each query and key head (one head_dim vector shared by all heads), no biases.
QWEN3 = Family(
    model_types=("qwen3",), layer_prefix="model.layers",
    layer_tensors={**LLAMA_TENSORS, "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight"},
    norms=("input_layernorm", "post_attention_layernorm", "q_norm", "k_norm"),
    hf_class="Qwen3ForCausalLM",
    gguf=GGUFLayout("qwen3", {**_LLAMA_GGUF, **_QK_NORMS_GGUF}),
)

# Gemma 2: norms after attention and after the MLP as well as before each; norm weights are offsets from 1.
GEMMA2 = Family(
    model_types=("gemma2",), layer_prefix="model.layers",
    layer_tensors={**LLAMA_TENSORS, "pre_feedforward_layernorm": "pre_feedforward_layernorm.weight",
                   "post_feedforward_layernorm": "post_feedforward_layernorm.weight"},
    norms=("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"),
    norm_identity=0.0,
    mlp_input_norm="pre_feedforward_layernorm",
    output_norms=("post_attention_layernorm", "post_feedforward_layernorm"),
    hf_class="Gemma2ForCausalLM",
    gguf=GGUFLayout("gemma2", _GEMMA_GGUF, norms_plus_one=True, global_every=2, query_scale_head_dim=True,
                    config_keys={"sliding_window": "attention.sliding_window",
                                 "attn_logit_softcapping": "attn_logit_softcapping",
                                 "final_logit_softcapping": "final_logit_softcapping"}),
)

# Gemma 3 (text): Gemma 2's four norms, plus Qwen3-style RMSNorms of each query and key head, which like
# every Gemma norm scale by 1 + weight.
GEMMA3 = Family(
    model_types=("gemma3_text",), layer_prefix="model.layers",
    layer_tensors={**GEMMA2.layer_tensors, "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight"},
    norms=GEMMA2.norms + ("q_norm", "k_norm"),
    norm_identity=0.0,
    mlp_input_norm="pre_feedforward_layernorm",
    output_norms=GEMMA2.output_norms,
    hf_class="Gemma3ForCausalLM",
    gguf=GGUFLayout("gemma3", {**_GEMMA_GGUF, **_QK_NORMS_GGUF}, norms_plus_one=True, global_every=6,
                    query_scale_head_dim=True, local_rope=True,
                    config_keys={"sliding_window": "attention.sliding_window"},
                    config_overrides={"final_logit_softcapping": None, "attn_logit_softcapping": None}),
)

# every supported family by the model_type of its config.json
FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family: every stage (extraction, methods, reconstruction, alignment, GGUF import) then takes it."""
    for model_type in family.model_types:
        FAMILIES[model_type] = family
    return family


for _family in (LLAMA, QWEN2, QWEN3, GEMMA2, GEMMA3):
    register(_family)


def gguf_architectures() -> list[str]:
    """The GGUF architecture names the registered families import from."""
    return sorted({f.gguf.arch for f in FAMILIES.values() if f.gguf})


def gguf_family(gguf_arch: str) -> Family | None:
    """The family whose GGUF files name their architecture ``gguf_arch``."""
    return next((f for f in FAMILIES.values() if f.gguf and f.gguf.arch == gguf_arch), None)


class UnsupportedFamily(ValueError):
    pass


def family_for(model_type: str) -> Family:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise UnsupportedFamily(
            f"model_type {model_type!r} has no adapter (fused qkv projections and mixture-of-experts MLPs "
            f"are not supported); supported model types: {', '.join(sorted(FAMILIES))}"
        ) from None


def split_layer_key(name: str) -> tuple[str, int, str] | None:
    """``model.layers.3.mlp.up_proj.weight`` -> (``model.layers``, 3, ``mlp.up_proj.weight``)."""
    m = LAYER_KEY.match(name)
    if not m:
        return None
    return m["prefix"], int(m["index"]), m["rest"]


ATTENTION_KERNELS = ("sdpa", "eager", "flash_attention_2")


def causal_lm_class(model_type: str):
    """transformers' causal-LM class of ``model_type`` (a config's), e.g. Gemma2ForCausalLM for gemma2."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type])


def attention_kernels(model_class) -> list[str]:
    """The attention implementations ``model_class`` takes here: sdpa and flash_attention_2 where the class supports
    them (Gemma 2 has no sdpa), flash_attention_2 only with the flash_attn package installed; eager always."""
    import importlib.util

    out = ["sdpa"] if getattr(model_class, "_supports_sdpa", False) else []
    if getattr(model_class, "_supports_flash_attn", False) and importlib.util.find_spec("flash_attn"):
        out.append("flash_attention_2")
    return out + ["eager"]


def attention_for(model_class, requested: str) -> str:
    """The kernel a training run sets: ``auto`` is the first the class takes (sdpa, else eager)."""
    kernels = attention_kernels(model_class)
    if requested == "auto":
        return kernels[0]
    if requested not in kernels:
        raise ValueError(f"attn_implementation {requested!r} is not available for {model_class.__name__} "
                         f"(available: {', '.join(kernels)}, or auto)")
    return requested
