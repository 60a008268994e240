"""Methods that make each new layer from its neighbours, or draw it: a copy of the lower one (LLaMA Pro with
zero_init; 'interpolation copy'), the mean of both (Avg-DeUS), and a random control."""

from __future__ import annotations

from .registry import Option, method


@method("copy")
def copy_lower(opts, source, entry):
    """Each new layer is a copy of its lower neighbour."""
    return source.layer(entry["between"][0])


@method("average", needs_upper=True)
def average_neighbours(opts, source, entry):
    """Avg-DeUS: the element-wise mean of the two neighbours' tensors."""
    lower, upper = entry["between"]
    a, b = source.layer(lower), source.layer(upper)
    return {m: 0.5 * (a[m] + b[m]) for m in a}


@method("random", stochastic=True,
        options={"init_std": Option({"type": "number", "exclusiveMinimum": 0}, 0.02, "weight std")})
def random_init(opts, source, entry):
    """A control: new layers drawn like a fresh model's (normal weights, identity norms, zero biases)."""
    import torch

    arch, stacks = source.arch, source.weights
    g = torch.Generator().manual_seed(opts.get("seed", 0) * 100_003 + entry["id"])
    out = {}
    for m in stacks.matrices:
        shape = stacks.shape(m)
        if m in arch.norms:
            out[m] = torch.full(shape, arch.norm_identity)
        elif m in arch.biases:
            out[m] = torch.zeros(shape)
        else:
            out[m] = torch.randn(shape, generator=g) * opts["init_std"]
    return out
