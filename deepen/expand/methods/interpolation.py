"""Methods that make each new layer from its neighbours, or draw it: a copy of the lower one (LLaMA Pro with
zero_init; 'interpolation copy'), the mean of both (Avg-DeUS), and two random controls (drawn per tensor, or as
the model's own initialisation would)."""

from __future__ import annotations

from deepen.expand.methods.registry import ALIGN, Option, method


def _lower_copy(opts, entry, arch):
    # on the aligned base the copy is of a re-ordered layer: not a copy of the base's
    return None if opts.get("align") else (entry["between"][0], {})


@method("copy", options={"align": ALIGN}, copy_of=_lower_copy)
def copy_lower(opts, source, entry):
    """Each new layer is a copy of its lower neighbour."""
    return source.layer(entry["between"][0])


@method("average", needs_upper=True, options={"align": ALIGN})
def average_neighbours(opts, source, entry):
    """Avg-DeUS: the element-wise mean of the two neighbours' tensors. With ``align: true`` the neighbours' heads
    and neurons are matched first, by the exact assignment OpT-DeUS uses: close to OpT-DeUS with exact plans, but
    the matching is chained from layer 0 up rather than solved per pair, it re-orders the upper neighbour to the
    lower (OpT-DeUS moves the lower), and it leaves the residual stream alone where OpT-DeUS also maps its
    channels (the o_proj rows' plan), which changes the function."""
    lower, upper = entry["between"]
    a, b = source.layer(lower), source.layer(upper)
    return {m: 0.5 * (a[m] + b[m]) for m in a}


@method("random", stochastic=True,
        options={"init_std": Option({"type": "number", "exclusiveMinimum": 0}, 0.02, "weight std")})
def random_init(opts, source, entry):
    """A control: new layers drawn like a fresh model's (normal weights, identity norms, zero biases)."""
    import torch

    arch, weights = source.arch, source.weights
    g = torch.Generator().manual_seed(opts.get("seed", 0) * 100_003 + entry["id"])
    out = {}
    for m in weights.matrices:
        shape = weights.shape(m)
        if m in arch.norms:
            out[m] = torch.full(shape, arch.norm_identity)
        elif m in arch.biases:
            out[m] = torch.zeros(shape)
        else:
            out[m] = torch.randn(shape, generator=g) * opts["init_std"]
    return out


def _fresh_model(config: dict, depth: int, seed: int):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "transformers_version")}
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(config["model_type"], **{
        **settings, "num_hidden_layers": depth}), dtype=torch.float32)


@method("fresh", stochastic=True)
def fresh_init(opts, source, entry):
    """A control: each new layer as transformers initialises a model of the expanded depth (seed ``seed``), the
    layer at the new one's position; Gstack's 'random' growth. It holds that fresh model in memory: for small
    models (``random`` draws layer by layer)."""
    model = source.memo("fresh_model", lambda: _fresh_model(source.model_config, len(source.plan), opts.get("seed", 0)))
    state = source.memo("fresh_state", model.state_dict)
    return {m: state[source.arch.tensor_name(entry["position"], m)].float() for m in source.weights.matrices}
