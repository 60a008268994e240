"""The contract every method implements: ``make_layer(options, source, entry) -> Layer``. A :class:`LayerSource`
is what a method reads (the base's layers, its architecture and config, the artifacts it declared); a ``Layer``
is one new layer's tensors by matrix type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from deepen.models.families import Family

if TYPE_CHECKING:
    import torch

    from deepen.expand.weights import LayerWeights

# one new layer's tensors by matrix type (torch is imported where tensors are made: plans need none)
Layer = dict[str, "torch.Tensor"]


@dataclass
class LayerSource:
    """What a method's ``make_layer`` reads: the base's weights per matrix type, its architecture and HF config,
    and the folders of the artifacts the method declared."""

    weights: LayerWeights
    arch: Family
    model_config: dict = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    # what a method loads once and reuses for every layer (memo); a caller may fill it in beforehand (tests)
    cache: dict[str, Any] = field(default_factory=dict)
    # the plan being run (set by generate_layers): its length is the expanded model's depth
    plan: list[dict] = field(default_factory=list)
    # where the methods compute (deepen.core.device): the layers they read are put there; None is the CPU
    device: Any = None

    @property
    def num_layers(self) -> int:
        return self.weights.num_layers

    def layer(self, index: int) -> Layer:
        """Base layer ``index``'s tensors, float32, on the source's device."""
        return {m: self.on_device(self.weights.get(m, index).float()) for m in self.weights.matrices}

    def on_device(self, t):
        return t if self.device is None else t.to(self.device)

    def memo(self, key: str, load: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = load()
        return self.cache[key]
