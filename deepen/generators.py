"""Up-scaling methods as generators: each returns a layer plan and a function that makes the
tensors of one new layer. Writing the tensors out is done by :func:`run_generator`, the same for all.

A new method is one function decorated with ``@generator("name")`` plus a config entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tqdm import tqdm

from . import plan as plans
from .arch import Architecture

# torch is imported where tensors are made, not here: the workflow imports this module (through the
# config check) every time it parses the Snakefile, once more per cluster job, and plans need no torch.
if TYPE_CHECKING:
    import torch

    from .extract import WeightStacks

    Layer = dict[str, torch.Tensor]


@dataclass
class Expansion:
    plan: list[dict]
    # entry of a new layer -> its tensors per matrix type (float32 is fine; cast on write)
    make_layer: Callable[[dict], Layer] | None = None
    # True when the generator needs both neighbours of every new layer
    needs_upper: bool = False


GENERATORS: dict[str, Callable[..., Expansion]] = {}
# generator name -> function of the method's options naming the artifacts it reads besides the weights
REQUIREMENTS: dict[str, Callable[[dict], list[str]]] = {}


# generators whose layers depend on a random seed: one model per CPT seed
STOCHASTIC: set[str] = set()


def generator(name: str, requires: Callable[[dict], list[str]] = lambda opts: [], stochastic: bool = False):
    """Register a generator ``fn(opts, stacks, arch, artifacts) -> Expansion``; ``stochastic`` ones
    read ``opts['seed']``."""

    def register(fn):
        GENERATORS[name] = fn
        REQUIREMENTS[name] = requires
        if stochastic:
            STOCHASTIC.add(name)
        return fn

    return register


def required_artifacts(opts: dict) -> list[str]:
    return REQUIREMENTS[opts["generator"]](opts)


def is_stochastic(opts: dict) -> bool:
    return opts["generator"] in STOCHASTIC


def _layer(stacks: WeightStacks, layer: int) -> Layer:
    return {m: stacks.get(m, layer).float() for m in stacks.matrices}


@generator("copy")
def copy_lower(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict) -> Expansion:
    """Each new layer is a copy of its lower neighbour (LLaMA Pro with zero_init; 'interpolation copy')."""
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))
    return Expansion(plan, lambda entry: _layer(stacks, entry["between"][0]))


@generator("average")
def average_neighbours(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict) -> Expansion:
    """Avg-DeUS: the element-wise mean of the two neighbours' tensors."""
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))

    def make(entry):
        lower, upper = entry["between"]
        a, b = _layer(stacks, lower), _layer(stacks, upper)
        return {m: 0.5 * (a[m] + b[m]) for m in a}

    return Expansion(plan, make, needs_upper=True)


@generator("random", stochastic=True)
def random_init(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict) -> Expansion:
    """A control: new layers drawn like a fresh model's (normal weights, identity norms, zero biases)."""
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))
    std = opts.get("init_std", 0.02)

    def make(entry):
        import torch

        g = torch.Generator().manual_seed(opts.get("seed", 0) * 100_003 + entry["id"])
        out = {}
        for m in stacks.matrices:
            shape = stacks.shape(m)
            if m in arch.norms:
                out[m] = torch.full(shape, arch.norm_identity)
            elif m in arch.biases:
                out[m] = torch.zeros(shape)
            else:
                out[m] = torch.randn(shape, generator=g) * std
        return out

    return Expansion(plan, make)


@generator("solar")
def solar(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict) -> Expansion:
    """SOLAR depth up-scaling: base[0 : L-m] followed by base[m : L]; no new tensors. The second
    copies of the layers m .. L-m-1 count as the added ones."""
    L = stacks.num_layers
    m = opts.get("m") or L // 4
    if not 1 <= m < L / 2:
        raise plans.PlanError(f"solar: m must satisfy 1 <= m < L/2 = {L / 2}, got {m}")
    lower = [{"from": "base", "layer": i} for i in range(0, L - m)]
    upper = [{"from": "base", "layer": i, **({"added": True} if i < L - m else {})} for i in range(m, L)]
    return Expansion(lower + upper)


@generator("stack")
def stack(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict) -> Expansion:
    """Static stacking: the whole layer stack repeated g times; the copies after the first count as added."""
    g = opts.get("g", 2)
    if not isinstance(g, int) or g < 2:
        raise plans.PlanError(f"stack: g must be an integer >= 2, got {g!r}")
    return Expansion([{"from": "base", "layer": i, **({"added": True} if copy else {})}
                      for copy in range(g) for i in range(stacks.num_layers)])


@generator("lesa", requires=lambda opts: ["svd", "predictor"] if opts.get("svd", True) else ["predictor_nosvd"])
def lesa(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict) -> Expansion:
    """LESA: per matrix type, W' = U diag(S) G([V_l, V_{l+1}]) with the trained predictor G.

    With ``svd: false`` (the ablation) the predictor works on raw weight rows: W' = G([W_l, W_{l+1}]).
    Norms (and biases) come from layer 0 (``norm_source: layer0``, as the reference code) or the
    neighbours' mean.
    """
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))
    use_svd = opts.get("svd", True)
    norm_source = opts.get("norm_source", "mean")
    linear = arch.linear

    scaled_u: dict[str, torch.Tensor] = {}  # U diag(S) per matrix type, read once

    def make(entry):
        import torch

        lower, upper = entry["between"]
        out = {}
        with torch.no_grad():
            for m in linear:
                predictor = artifacts["predictors"][m]
                if use_svd:
                    svd = artifacts["svd"][m]  # a BlockSource over V; U and S live in the same file
                    if m not in scaled_u:
                        scaled_u[m] = svd.reader.get("U") * svd.reader.get("S")[None, :]
                    out[m] = scaled_u[m] @ predictor(svd.get(lower), svd.get(upper))
                else:
                    out[m] = predictor(stacks.get(m, lower).float(), stacks.get(m, upper).float())
        for m in arch.vectors:  # norms, and biases (Qwen2) alike: not predicted
            if norm_source == "layer0":
                out[m] = stacks.get(m, 0).float()
            else:
                out[m] = 0.5 * (stacks.get(m, lower).float() + stacks.get(m, upper).float())
        return out

    # Artifacts come as directories from the workflow, or as objects from a caller (tests); a plan-only
    # call (config checking) has none.
    if use_svd and "svd_dir" in artifacts and "svd" not in artifacts:
        from .predictor import BlockSource

        artifacts["svd"] = {m: BlockSource(Path(artifacts["svd_dir"]) / f"{m}.safetensors", "V") for m in linear}
    if "predictor_dir" in artifacts and "predictors" not in artifacts:
        from .predictor import load_predictor

        artifacts["predictors"] = {m: load_predictor(Path(artifacts["predictor_dir"]) / f"{m}.pt") for m in linear}
    return Expansion(plan, make, needs_upper=True)


def build_expansion(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict | None = None) -> Expansion:
    name = opts["generator"]
    if name not in GENERATORS:
        raise plans.PlanError(f"unknown generator {name!r}; known: {sorted(GENERATORS)}")
    expansion = GENERATORS[name](opts, stacks, arch, artifacts or {})
    plans.validate(expansion.plan, stacks.num_layers)
    if expansion.needs_upper:
        top = [e["between"] for _, e in plans.new_layers(expansion.plan) if e["between"][1] is None]
        if top:
            raise plans.PlanError(
                f"generator {name!r} needs two neighbours, but the placement puts a new layer above the "
                f"last layer {top[0][0]}; choose another placement"
            )
    return expansion


def run_generator(opts: dict, stacks: WeightStacks, arch: Architecture, out_dir: str | Path, method: str,
                  artifacts: dict | None = None) -> dict:
    """Build the plan, then stream every new layer's tensors into ``new_layers.safetensors``."""
    import torch

    from .tensorio import StreamingWriter

    out_dir = Path(out_dir)
    expansion = build_expansion(opts, stacks, arch, artifacts)
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
                    lower, upper = entry["between"]
                    raise FloatingPointError(f"{method}: new layer {entry['id']} (between base layers {lower} and "
                                             f"{upper}) {m} has NaN or Inf")
                writer.write(f"new.{entry['id']}.{m}", t.to(stacks.dtype(m)).contiguous())
    info = {"method": method, "generator": opts["generator"], "base_layers": stacks.num_layers}
    plans.save(expansion.plan, out_dir / "plan.json", **info)
    return {"plan": expansion.plan, **info}


@generator("opt_deus")
def opt_deus(opts: dict, stacks: WeightStacks, arch: Architecture, artifacts: dict) -> Expansion:
    """OpT-DeUS: align the lower neighbour to the upper with optimal transport, then average.

    Options: ``solver`` (emd | sinkhorn), ``reg``, ``attention`` (heads | rows), ``mlp`` (joint | separate),
    ``as_released`` (the released fusion: unscaled sinkhorn plans, per-row attention with o_proj's columns left
    in place, separate MLP plans). Use with ``zero_init: true``.
    """
    plan = plans.interleave(stacks.num_layers, plans.insertion_points(opts["placement"], stacks.num_layers))
    as_released = opts.get("as_released", False)
    heads = artifacts.get("num_attention_heads")
    kv = artifacts.get("num_key_value_heads") or heads

    def make(entry):
        from .ot_align import OTSettings, fuse_layers

        # The released code solves every plan with sinkhorn; the corrected variant defaults to exact plans.
        solver = opts.get("solver", "sinkhorn" if as_released else "emd")
        settings = OTSettings(solver=solver, reg=opts.get("reg", 0.06), as_released=as_released)
        lower, upper = entry["between"]
        # as_released also means the reference's per-row attention and separate MLP plans
        return fuse_layers(_layer(stacks, lower), _layer(stacks, upper), heads, kv, settings,
                           arch.mlp_input_norm, arch.output_norms,
                           attention=opts.get("attention", "rows" if as_released else "heads"),
                           mlp=opts.get("mlp", "separate" if as_released else "joint"))

    return Expansion(plan, make, needs_upper=True)
