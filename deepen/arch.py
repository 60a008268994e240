"""Where each per-layer tensor lives in a checkpoint, per architecture family.

Every method talks about matrix *types* (``q_proj``, ``gate_proj``, ``input_layernorm`` …);
this module is the one place that maps them to checkpoint tensor names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LAYER_KEY = re.compile(r"^(?P<prefix>.*\.layers)\.(?P<index>\d+)\.(?P<rest>.+)$")


@dataclass(frozen=True)
class Architecture:
    model_types: tuple[str, ...]
    layer_prefix: str
    # matrix type -> tensor name inside one decoder layer
    layer_tensors: dict[str, str]
    # matrices that are the residual-stream outputs of a block; zeroing them makes the block the identity
    output_matrices: tuple[str, ...] = ("o_proj", "down_proj")
    norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")

    @property
    def matrices(self) -> list[str]:
        return list(self.layer_tensors)

    def tensor_name(self, layer: int, matrix: str) -> str:
        return f"{self.layer_prefix}.{layer}.{self.layer_tensors[matrix]}"

    def matrix_of(self, rest: str) -> str | None:
        for matrix, name in self.layer_tensors.items():
            if name == rest:
                return matrix
        return None


LLAMA = Architecture(
    model_types=("llama",),
    layer_prefix="model.layers",
    layer_tensors={
        "q_proj": "self_attn.q_proj.weight",
        "k_proj": "self_attn.k_proj.weight",
        "v_proj": "self_attn.v_proj.weight",
        "o_proj": "self_attn.o_proj.weight",
        "gate_proj": "mlp.gate_proj.weight",
        "up_proj": "mlp.up_proj.weight",
        "down_proj": "mlp.down_proj.weight",
        "input_layernorm": "input_layernorm.weight",
        "post_attention_layernorm": "post_attention_layernorm.weight",
    },
)

ARCHITECTURES = {t: a for a in (LLAMA,) for t in a.model_types}


class UnsupportedArchitecture(ValueError):
    pass


def architecture_for(model_type: str) -> Architecture:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise UnsupportedArchitecture(
            f"model_type {model_type!r} has no adapter; supported: {sorted(ARCHITECTURES)}"
        ) from None


def split_layer_key(name: str) -> tuple[str, int, str] | None:
    """``model.layers.3.mlp.up_proj.weight`` -> (``model.layers``, 3, ``mlp.up_proj.weight``)."""
    m = LAYER_KEY.match(name)
    if not m:
        return None
    return m["prefix"], int(m["index"]), m["rest"]
