"""Running a method: its plan, then every new layer's tensors streamed into ``new_layers.safetensors``, with the
checks every method gets (zero-init of the residual outputs, finite values, the declared shapes and dtypes)."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from deepen.core.device import stage_device
from deepen.core.schema import method_defaults
from deepen.expand import plan as plans
from deepen.expand.methods import build_plan, method_of, new_layer_copies, with_defaults
from deepen.expand.methods.contract import LayerSource
from deepen.models.families import family_for


def generate_layers(opts: dict, source: LayerSource, out_dir: str | Path, name: str,
                    plan: list[dict] | None = None, profile: list[dict] | None = None) -> dict:
    """Method ``opts['generator']`` as row ``name``: write its plan and its new layers' tensors into ``out_dir``.
    ``plan``: one the caller made (growth's), checked as the method's own would be; by default the method's.
    ``profile``: the base's layer profile, which an ``auto`` placement places by (the seams it chose are recorded
    in the plan file). ``make_layer`` gets each new entry with its ``position`` in the expanded model."""
    import torch

    from deepen.models.tensorio import StreamingWriter

    out_dir, weights, arch = Path(out_dir), source.weights, source.arch
    spec, opts = method_of(opts), with_defaults(opts)
    placed = {}
    if plans.is_auto(opts.get("placement")):
        if profile is None:
            raise plans.PlanError(f"{name}: placement {opts['placement']} places by the base's layer profile; "
                                  "none was given")
        seams = plans.insertion_points(opts["placement"], weights.num_layers, profile)
        placed = {"placement": {"by": "cosine", **opts["placement"], "seams": seams}}
        opts = {**opts, "placement": {"explicit": seams}}
    plan = build_plan(opts, weights.num_layers, plan)
    source.plan = plan
    new = plans.new_layers(plan)
    specs = [(f"new.{e['id']}.{m}", weights.shape(m), weights.dtype(m)) for _, e in new for m in weights.matrices]
    zero = {**method_defaults(), **opts}["zero_init"]
    with StreamingWriter(out_dir / "new_layers.safetensors", specs, metadata={"method": name}) as writer:
        for position, entry in tqdm(new, desc=f"generate {name}", leave=False):
            layer = spec.make_layer(opts, source, {**entry, "position": position})
            for m in weights.matrices:
                t = layer[m]
                if zero and m in arch.output_matrices:
                    # A zero residual-stream output makes the new block the identity at init.
                    t = torch.zeros_like(t)
                if not torch.isfinite(t).all():
                    lower, upper = entry["between"]
                    raise FloatingPointError(f"{name}: new layer {entry['id']} (between base layers {lower} and "
                                             f"{upper}) {m} has NaN or Inf")
                writer.write(f"new.{entry['id']}.{m}", t.to("cpu", weights.dtype(m)).contiguous())
    info = {"method": name, "generator": opts["generator"], "base_layers": weights.num_layers, **placed}
    copies = new_layer_copies(opts, plan, arch)
    if copies is not None:  # every new layer a copy of a base layer times factors: a mergekit passthrough can say it
        info["copies"] = [{"id": i, "layer": layer, "scale": factors} for i, (layer, factors) in copies.items()]
    plans.save(plan, out_dir / "plan.json", **info)
    return {"plan": plan, **info}


def generate_stage(method: str, opts: dict, base_dir, weights_dir, out_dir, artifacts: dict | None = None,
                   device: str = "auto", profile_path=None) -> None:
    """``artifacts``: {name: folder} of what the method declares it reads besides the weights; the methods compute
    on ``device`` (deepen.core.device). ``profile_path``: the base's layer profile, for an ``auto`` placement."""
    import json

    from deepen.expand.weights import LayerWeights
    from deepen.models.model_dir import read_model_config

    config = read_model_config(base_dir)
    arch = family_for(config.get("model_type", ""))
    source = LayerSource(LayerWeights(weights_dir, arch.matrices), arch, config,
                         {name: Path(folder) for name, folder in (artifacts or {}).items()},
                         device=stage_device(device))
    profile = json.loads(Path(profile_path).read_text())["layers"] if profile_path else None
    generate_layers(opts, source, out_dir, method, profile=profile)
