"""Gstack's growth operators, for a small model of Ls layers grown g times to L = g·Ls layers: each a plan run by the
layer executor every method uses (:func:`grow`).

* ``stack``: layer i of the grown model is the small model's layer i mod Ls (every tensor copied);
  embeddings, final norm and head are the small model's;
* ``zero_init``: the same, but the copies above the first (layers Ls..L-1) have o_proj and down_proj
  zeroed, so the grown model computes what the small one did;
* ``random``: layers Ls..L-1 keep the fresh initialisation of an L-layer model.
"""

from __future__ import annotations

from pathlib import Path

OPERATORS = ("stack", "zero_init", "random")


class GrowthError(ValueError):
    pass


def growth_plan(operator: str, g: int, small_layers: int, seed: int) -> tuple[dict, list[dict] | None]:
    """The method options and plan (None: the method's own) that grow a model of ``small_layers`` layers g times by
    ``operator``: ``stack`` is the stack method; for ``zero_init`` the copies above the first are new layers, each a
    copy of layer i mod Ls with its residual outputs zeroed; for ``random`` they are drawn as a fresh g·Ls-layer
    model's (the fresh method, seeded as the scratch target is)."""
    if operator not in OPERATORS:
        raise GrowthError(f"unknown growth operator {operator!r}; use one of {', '.join(OPERATORS)}")
    if operator == "stack":
        return {"generator": "stack", "g": g}, None
    Ls = small_layers
    # each new layer stands in place of (and under zero_init is made from) the small model's layer k mod Ls
    plan = [{"from": "base", "layer": i} for i in range(Ls)] + [
        {"from": "new", "id": k, "between": [k % Ls, None]} for k in range((g - 1) * Ls)]
    if operator == "zero_init":
        return {"generator": "copy", "zero_init": True}, plan
    return {"generator": "fresh", "seed": seed}, plan


def grow(small_dir, out_dir, g: int, operator: str, seed: int, work_dir) -> Path:
    """The small model (an HF directory, with its tokenizer) grown by ``operator`` into ``out_dir``, through the
    layer executor and the reconstruction every method uses: the family adapters and the carried-tensor checks
    apply. ``work_dir`` holds the extracted weights and the new layers."""
    from deepen.models.families import family_for
    from deepen.expand.weights import LayerWeights, extract_matrix
    from deepen.models.model_dir import read_model_config
    from deepen.expand.execute import generate_layers
    from deepen.expand.methods.contract import LayerSource
    from deepen.models.model_dir import check_model_dir
    from deepen.expand.reconstruct import reconstruct

    small_dir, work_dir = Path(small_dir), Path(work_dir)
    config = read_model_config(small_dir)
    arch = family_for(config.get("model_type", ""))
    reader = check_model_dir(small_dir, arch, config)
    for m in arch.matrices:
        extract_matrix(reader, arch, config["num_hidden_layers"], m, work_dir / "weights" / f"{m}.safetensors")
    opts, plan = growth_plan(operator, g, config["num_hidden_layers"], seed)
    source = LayerSource(LayerWeights(work_dir / "weights", arch.matrices), arch, config)
    name = f"gstack_{operator}"
    generate_layers(opts, source, work_dir / "layers", name, plan)
    return reconstruct(small_dir, small_dir, work_dir / "layers" / "plan.json",
                       work_dir / "layers" / "new_layers.safetensors", out_dir, name, max_shard_bytes=1 << 40)
