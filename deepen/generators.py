"""Up-scaling methods as generators: each returns a layer plan and a function that makes the
tensors of one new layer. Writing the tensors out is done by :func:`run_generator`, the same for all.

A new method is one function decorated with ``@generator("name")`` plus a config entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from . import plan as plans
from .arch import Architecture
from .extract import WeightStacks
from .tensorio import StreamingWriter

Layer = dict[str, torch.Tensor]


@dataclass
class Expansion:
    plan: list[dict]
    # entry of a new layer -> its tensors per matrix type (float32 is fine; cast on write)
    make_layer: Callable[[dict], Layer] | None = None
    # True when the generator needs both neighbours of every new layer
    needs_upper: bool = False


GENERATORS: dict[str, Callable[[dict, WeightStacks, Architecture], Expansion]] = {}


def generator(name: str):
    def register(fn):
        GENERATORS[name] = fn
        return fn

    return register


def _layer(stacks: WeightStacks, layer: int) -> Layer:
    return {m: stacks.get(m, layer).float() for m in stacks.matrices}


@generator("copy")
def copy_lower(opts: dict, stacks: WeightStacks, arch: Architecture) -> Expansion:
    """Each new layer is a copy of its lower neighbour (LLaMA Pro with zero_init; 'interpolation copy')."""
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))
    return Expansion(plan, lambda entry: _layer(stacks, entry["between"][0]))


@generator("average")
def average_neighbours(opts: dict, stacks: WeightStacks, arch: Architecture) -> Expansion:
    """Avg-DeUS: the element-wise mean of the two neighbours' tensors."""
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))

    def make(entry):
        lower, upper = entry["between"]
        a, b = _layer(stacks, lower), _layer(stacks, upper)
        return {m: 0.5 * (a[m] + b[m]) for m in a}

    return Expansion(plan, make, needs_upper=True)


@generator("random")
def random_init(opts: dict, stacks: WeightStacks, arch: Architecture) -> Expansion:
    """A control: new layers drawn like a fresh model's (normal weights, unit norms)."""
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))
    std = opts.get("init_std", 0.02)

    def make(entry):
        g = torch.Generator().manual_seed(opts.get("seed", 0) * 100_003 + entry["id"])
        out = {}
        for m in stacks.matrices:
            shape = stacks.shape(m)
            out[m] = torch.ones(shape) if m in arch.norms else torch.randn(shape, generator=g) * std
        return out

    return Expansion(plan, make)


@generator("solar")
def solar(opts: dict, stacks: WeightStacks, arch: Architecture) -> Expansion:
    """SOLAR depth up-scaling: base[0 : L-m] followed by base[m : L]; no new tensors."""
    L = stacks.num_layers
    m = opts.get("m") or L // 4
    if not 1 <= m < L / 2:
        raise plans.PlanError(f"solar: m must satisfy 1 <= m < L/2 = {L / 2}, got {m}")
    layers = list(range(0, L - m)) + list(range(m, L))
    return Expansion([{"from": "base", "layer": i} for i in layers])


@generator("stack")
def stack(opts: dict, stacks: WeightStacks, arch: Architecture) -> Expansion:
    """Static stacking: the whole layer stack repeated g times."""
    g = opts.get("g", 2)
    if not isinstance(g, int) or g < 2:
        raise plans.PlanError(f"stack: g must be an integer >= 2, got {g!r}")
    return Expansion([{"from": "base", "layer": i} for _ in range(g) for i in range(stacks.num_layers)])


def build_expansion(opts: dict, stacks: WeightStacks, arch: Architecture) -> Expansion:
    name = opts["generator"]
    if name not in GENERATORS:
        raise plans.PlanError(f"unknown generator {name!r}; known: {sorted(GENERATORS)}")
    expansion = GENERATORS[name](opts, stacks, arch)
    plans.validate(expansion.plan, stacks.num_layers)
    if expansion.needs_upper:
        top = [e["between"] for _, e in plans.new_layers(expansion.plan) if e["between"][1] is None]
        if top:
            raise plans.PlanError(
                f"generator {name!r} needs two neighbours, but the placement puts a new layer above the "
                f"last layer {top[0][0]}; choose another placement"
            )
    return expansion


def run_generator(opts: dict, stacks: WeightStacks, arch: Architecture, out_dir: str | Path, method: str) -> dict:
    """Build the plan, then stream every new layer's tensors into ``new_layers.safetensors``."""
    out_dir = Path(out_dir)
    expansion = build_expansion(opts, stacks, arch)
    new = plans.new_layers(expansion.plan)
    specs = [
        (f"new.{e['id']}.{m}", stacks.shape(m), stacks.dtype(m)) for _, e in new for m in stacks.matrices
    ]
    zero = opts.get("zero_init", False)
    with StreamingWriter(out_dir / "new_layers.safetensors", specs, metadata={"method": method}) as writer:
        for _, entry in tqdm(new, desc=f"generate {method}", leave=False):
            layer = expansion.make_layer(entry)
            for m in stacks.matrices:
                t = layer[m]
                if zero and m in arch.output_matrices:
                    # A zero residual-stream output makes the new block the identity at init.
                    t = torch.zeros_like(t)
                if not torch.isfinite(t).all():
                    raise FloatingPointError(f"{method}: new layer {entry['id']} {m} has NaN or Inf")
                writer.write(f"new.{entry['id']}.{m}", t.to(stacks.dtype(m)).contiguous())
    info = {"method": method, "generator": opts["generator"], "base_layers": stacks.num_layers}
    plans.save(expansion.plan, out_dir / "plan.json", **info)
    return {"plan": expansion.plan, **info}
