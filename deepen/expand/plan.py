"""The layer plan: which layer of the deeper model comes from where.

A plan is a list of entries, one per output layer, in order:

    {"from": "base", "layer": 7}                    # a base layer, copied as is
    {"from": "base", "layer": 3, "added": true}     # a second copy of a base layer (SOLAR, stacking)
    {"from": "new", "id": 0, "between": [7, 8]}     # a generated layer; its tensors are new_layers[id]

``between`` names the base neighbours the new layer was made from (the upper one is ``None`` when
the layer sits on top of the stack). Placement — where new layers go — is shared by every method
that interpolates. ``{auto: N}`` places from data: the base's layer profile (deepen/evaluate/seams.py,
measured once on the base) scores each seam between two base layers, and the N best get a new layer.
"""

from __future__ import annotations

import json
from pathlib import Path

from deepen.core.schema import auto_placement_defaults


class PlanError(ValueError):
    pass


# What an ``auto`` placement ranks seams by, from the base's layer profile: the measure per layer, and whether a
# high value marks a layer that does little (cosine of its input and output near 1) or a low one (the val loss
# barely rises when it is skipped).
AUTO_MEASURES = {"cosine": ("cosine", True), "skip_loss": ("skip_loss_delta", False)}


def seam_scores(profile: list[dict], by: str = "cosine") -> list[float]:
    """Per seam i (between base layers i and i+1), how little its two neighbours change the model: the mean of
    their measure, signed so that higher is a better place for a new layer."""
    if by not in AUTO_MEASURES:
        raise PlanError(f"placement.by: {by!r} is not a measure; use {' or '.join(AUTO_MEASURES)}")
    key, high_is_idle = AUTO_MEASURES[by]
    values = [row[key] for row in profile]
    sign = 1.0 if high_is_idle else -1.0
    return [sign * (values[i] + values[i + 1]) / 2 for i in range(len(values) - 1)]


def auto_points(count: int, num_layers: int, profile: list[dict] | None = None, by: str = "cosine") -> list[int]:
    """The ``count`` best seams of a ``num_layers``-layer base by its layer ``profile`` (one row per base layer);
    ties, and every seam while no profile is given (the config check, the cost estimates: the depth is what
    they need), go to the higher seam, where the papers place new layers."""
    if not isinstance(count, int) or not 1 <= count <= num_layers - 1:
        raise PlanError(f"placement.auto must be an integer in 1..{num_layers - 1} (one new layer per seam between "
                        f"two of the base's {num_layers} layers), got {count!r}")
    if profile is None:
        scores = [0.0] * (num_layers - 1)
        seam_scores([{"cosine": 0.0, "skip_loss_delta": 0.0}] * 2, by)  # the measure's name, checked
    else:
        if len(profile) != num_layers:
            raise PlanError(f"the layer profile has {len(profile)} layers, the base {num_layers}")
        scores = seam_scores(profile, by)
    ranked = sorted(range(num_layers - 1), key=lambda i: (-scores[i], -i))
    return sorted(ranked[:count])


def is_auto(placement) -> bool:
    return isinstance(placement, dict) and "auto" in placement


def insertion_points(placement, num_layers: int, profile: list[dict] | None = None) -> list[int]:
    """Base layer indices after which one new layer is inserted; ``profile``: the base's layer profile, which an
    ``auto`` placement ranks by."""
    L = num_layers
    if is_auto(placement):
        return auto_points(placement["auto"], L, profile, {**auto_placement_defaults(), **placement}["by"])
    if placement == "top_half":
        # one new layer between each adjacent pair of the top half: L -> 1.5 L
        points = list(range(L // 2 - 1, L - 1))
    elif placement == "bottom":
        points = list(range(0, L // 2))
    elif isinstance(placement, dict) and "interval" in placement:
        k = placement["interval"]
        if not isinstance(k, int) or k < 1:
            raise PlanError(f"placement.interval must be a positive integer, got {k!r}")
        # LLaMA Pro inserts after the last layer of each group (offset k-1); offset 0 keeps every new
        # layer below another, for generators that need both neighbours.
        offset = placement.get("offset", k - 1)
        if not isinstance(offset, int) or not 0 <= offset < k:
            raise PlanError(f"placement.offset must be an integer in 0..{k - 1}, got {offset!r}")
        points = list(range(offset, L, k))
    elif isinstance(placement, dict) and "explicit" in placement:
        points = list(placement["explicit"])
        bad = [p for p in points if not isinstance(p, int) or not 0 <= p < L]
        if bad:
            raise PlanError(f"placement.explicit: positions {bad} outside the base's layers 0..{L - 1}")
        if len(set(points)) != len(points):
            raise PlanError("placement.explicit: a position is listed twice")
        points = sorted(points)
    else:
        raise PlanError(
            f"unknown placement {placement!r}; use top_half, bottom, {{interval: k[, offset: o]}}, "
            "{explicit: [...]} or {auto: n[, by: cosine|skip_loss]}"
        )
    if not points:
        raise PlanError(f"placement {placement!r} inserts no layer into a {L}-layer model")
    return points


def interleave(num_layers: int, points: list[int]) -> list[dict]:
    """Base layers in order, with a new layer after each insertion point."""
    plan: list[dict] = []
    new_id = 0
    for layer in range(num_layers):
        plan.append({"from": "base", "layer": layer})
        if layer in points:
            upper = layer + 1 if layer + 1 < num_layers else None
            plan.append({"from": "new", "id": new_id, "between": [layer, upper]})
            new_id += 1
    return plan


def base_layers(plan: list[dict]) -> list[tuple[int, int]]:
    """(output index, base layer) for every copied layer."""
    return [(i, e["layer"]) for i, e in enumerate(plan) if e["from"] == "base"]


def new_layers(plan: list[dict]) -> list[tuple[int, dict]]:
    """(output index, entry) for every generated layer."""
    return [(i, e) for i, e in enumerate(plan) if e["from"] == "new"]


def added_layers(plan: list[dict]) -> list[int]:
    """Output indices of the layers the expansion added: generated layers and extra copies of base
    layers. These are what the 'new_only' freeze policy trains."""
    return [i for i, e in enumerate(plan) if e["from"] == "new" or e.get("added")]


def validate(plan: list[dict], num_layers: int) -> None:
    ids = []
    for i, e in enumerate(plan):
        if e.get("from") == "base":
            if not 0 <= e.get("layer", -1) < num_layers:
                raise PlanError(f"plan entry {i}: base layer {e.get('layer')} outside 0..{num_layers - 1}")
        elif e.get("from") == "new":
            ids.append(e["id"])
        else:
            raise PlanError(f"plan entry {i}: 'from' must be 'base' or 'new', got {e.get('from')!r}")
    if ids != list(range(len(ids))):
        raise PlanError(f"new layer ids must be 0..{len(ids) - 1} in order, got {ids}")


def save(plan: list[dict], path: str | Path, **info) -> None:
    from deepen.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps({"layers": len(plan), **info, "plan": plan}, indent=1))


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
