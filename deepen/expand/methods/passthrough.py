"""A mergekit passthrough config as a method (``generator: mergekit``, ``config: FILE``): its slices over the base are
the plan. An output layer whose source has a scale other than 1 is a new layer, the copy times its factors (a
factor 0 makes zeros, as ``zero_init`` does); the others are base layers, a repeat of a layer counting as added."""

from __future__ import annotations

from deepen.expand import mergekit_config
from deepen.expand.methods.registry import Option, method
from deepen.expand.plan import PlanError


def passthrough_plan(opts: dict, num_layers: int) -> list[dict]:
    if not opts.get("config"):
        raise PlanError("generator 'mergekit' needs config: the passthrough config's path")
    config = mergekit_config.read(opts["config"])
    plan, seen = [], set()
    for layer, rules in mergekit_config.layers_of(config):
        if layer >= num_layers:
            raise PlanError(f"mergekit config {opts['config']!r}: a layer_range takes layer {layer}, but the base "
                            f"has {num_layers} layers (0..{num_layers - 1}; a range ends at most at {num_layers})")
        if any(rule["value"] != 1.0 for rule in rules):
            upper = layer + 1 if layer + 1 < num_layers else None
            new_id = sum(e["from"] == "new" for e in plan)
            plan.append({"from": "new", "id": new_id, "between": [layer, upper], "scale": rules})
        else:
            plan.append({"from": "base", "layer": layer, **({"added": True} if layer in seen else {})})
        seen.add(layer)
    return plan


def scaled_copy_of(opts, entry, arch):
    """The new layer at ``entry['position']``: base layer ``between[0]`` times the factors its rules give."""
    layer = entry["between"][0]
    return layer, mergekit_config.scales(entry["scale"], arch, layer, entry["position"])


def family_problems(opts, arch, plan) -> list[str]:
    try:
        for position, entry in enumerate(plan):
            if entry["from"] == "new":
                scaled_copy_of(opts, {**entry, "position": position}, arch)
    except PlanError as e:
        return [f"config: {e}"]
    return []


@method("mergekit", plan=passthrough_plan, copy_of=scaled_copy_of, check=family_problems,
        reads=lambda opts: [opts["config"]] if opts.get("config") else [],
        options={"config": Option({"type": "string", "minLength": 1}, None,
                                  "a mergekit passthrough config (path from the working directory): slices of one "
                                  "model, whole-tensor scales; its `model` fields name the base")})
def scaled_copy(opts, source, entry):
    """A copy of base layer ``between[0]``, each tensor times its factor."""
    import torch

    layer, factors = scaled_copy_of(opts, entry, source.arch)
    tensors = source.layer(layer)
    return {m: (torch.zeros_like(t) if factors.get(m) == 0 else t * factors[m]) if m in factors else t
            for m, t in tensors.items()}
