"""Methods that reuse base layers whole and make no tensors: SOLAR's two overlapping copies, and static stacking."""

from __future__ import annotations

from deepen.expand import plan as plans
from deepen.expand.methods.registry import Method, Option, register


def solar_plan(opts: dict, num_layers: int) -> list[dict]:
    """SOLAR depth up-scaling: base[0 : L-m] followed by base[m : L]. The second copies of the layers
    m .. L-m-1 count as the added ones."""
    L = num_layers
    m = opts.get("m") or L // 4
    if not 1 <= m < L / 2:
        raise plans.PlanError(f"solar: m must satisfy 1 <= m < L/2 = {L / 2}, got {m}")
    lower = [{"from": "base", "layer": i} for i in range(0, L - m)]
    upper = [{"from": "base", "layer": i, **({"added": True} if i < L - m else {})} for i in range(m, L)]
    return lower + upper


def stack_plan(opts: dict, num_layers: int) -> list[dict]:
    """Static stacking: the whole layer stack repeated g times; the copies after the first count as added."""
    return [{"from": "base", "layer": i, **({"added": True} if copy else {})}
            for copy in range(opts["g"]) for i in range(num_layers)]


register(Method("solar", solar_plan, options={
    "m": Option({"type": "integer", "minimum": 1}, None, "layers dropped at each seam (default L/4)")}))
register(Method("stack", stack_plan, options={
    "g": Option({"type": "integer", "minimum": 2}, 2, "copies of the layer stack")}))
