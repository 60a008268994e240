"""LESA: per matrix type, W' = U diag(S) G([V_l, V_{l+1}]) with the trained predictor G
(deepen/expand/lesa/predictor.py) over the SVD of the matrix type concatenated across layers
(deepen/expand/lesa/svd.py)."""

from __future__ import annotations

from deepen.core.paths import Artifact
from deepen.expand.methods.registry import ALIGN, Option, method

SVD, PREDICTOR, PREDICTOR_RAW, HELDOUT = "svd", "predictor", "predictor_nosvd", "predictor_heldout"
# the space each predictor works in: rows of the SVD blocks V, or raw weight rows
PREDICTOR_SPACES = {PREDICTOR: "svd", PREDICTOR_RAW: "nosvd"}
# what LESA reads, by key (the paths are the job table's, deepen/core/paths.py): one file per linear matrix type, on
# the base or, with `align: true`, on the aligned base
ARTIFACTS = {SVD: Artifact("svd", "svd"),
             PREDICTOR: Artifact("predictor", "models", {"predictor": PREDICTOR}),
             PREDICTOR_RAW: Artifact("predictor", "models", {"predictor": PREDICTOR_RAW})}
# the leave-one-out fits of the predictor (rule predictor_heldout), per space: what `shrink: auto` reads
HELDOUT_FITS = {space: Artifact("predictor_heldout", "fits", {"space": space}) for space in ("svd", "nosvd")}


def predictor_spaces(artifacts) -> list[str]:
    """The spaces of the predictors among ``artifacts`` (names the methods read), svd first."""
    return [space for artifact, space in PREDICTOR_SPACES.items() if artifact in artifacts]


def lesa_artifacts(opts: dict) -> dict[str, Artifact]:
    names = [SVD, PREDICTOR] if opts["svd"] else [PREDICTOR_RAW]
    out = {name: ARTIFACTS[name] for name in names}
    if opts.get("shrink") == "auto":
        out[HELDOUT] = HELDOUT_FITS["svd" if opts["svd"] else "nosvd"]
    return out


def _shrink_factors(opts, source) -> dict[str, float]:
    """Per linear matrix type, the factor the new matrices are scaled by: ``shrink``, or with ``auto`` the one the
    leave-one-out fits found (deepen/expand/lesa/predictor.py: shrink_factor)."""
    import json

    if opts.get("shrink") != "auto":
        return {m: float(opts.get("shrink", 1.0)) for m in source.arch.linear}
    folder, out = source.artifacts[HELDOUT], {}
    for m in source.arch.linear:
        fits = json.loads((folder / f"{m}.json").read_text())
        if "shrink_factor" not in fits:
            raise ValueError(f"{folder / f'{m}.json'} has no shrink_factor: an older deepen made it; rerun it "
                             "(snakemake --forcerun predictor_heldout)")
        out[m] = fits["shrink_factor"]
    return out


def _predictors(opts, source):
    from deepen.expand.lesa.predictor import load_predictor

    folder = source.artifacts[PREDICTOR if opts["svd"] else PREDICTOR_RAW]
    return {m: source.on_device(load_predictor(folder / f"{m}.pt")) for m in source.arch.linear}


def _svd_blocks(source):
    from deepen.expand.lesa.predictor import BlockSource

    return {m: BlockSource(source.artifacts[SVD] / f"{m}.safetensors", "V") for m in source.arch.linear}


@method("lesa", needs_upper=True, artifacts=lesa_artifacts, options={
    "svd": Option({"type": "boolean"}, True, "predict SVD blocks (true) or raw weight rows (the ablation)"),
    "norm_source": Option({"enum": ["mean", "layer0"]}, "mean",
                          "norms (and biases) of new layers from the neighbours' mean, or layer 0 as the reference code"),
    "align": ALIGN,
    "shrink": Option({"oneOf": [{"const": "auto"}, {"type": "number", "minimum": 0, "maximum": 1}]}, None,
                     "scale every generated matrix by this factor (default 1: LESA as published; 0 is zero-init), or "
                     "auto: per matrix type, the factor that minimises the leave-one-out fits' held-out error"),
})
def lesa_layer(opts, source, entry):
    """With ``svd: false`` the predictor works on raw weight rows: W' = G([W_l, W_{l+1}])."""
    import torch

    lower, upper = entry["between"]
    weights = source.weights
    predictors = source.memo("predictors", lambda: _predictors(opts, source))
    factors = source.memo("shrink", lambda: _shrink_factors(opts, source))
    out = {}
    with torch.no_grad():
        for m in source.arch.linear:
            if opts["svd"]:
                svd = source.memo("svd", lambda: _svd_blocks(source))[m]  # V blocks; U and S live in the same file
                scaled_u = source.memo(f"scaled_u.{m}", lambda: source.on_device(svd.reader.get("U")
                                                                                 * svd.reader.get("S")[None, :]))
                out[m] = scaled_u @ predictors[m](source.on_device(svd.get(lower)), source.on_device(svd.get(upper)))
            else:
                out[m] = predictors[m](source.on_device(weights.get(m, lower).float()),
                                       source.on_device(weights.get(m, upper).float()))
            out[m] = out[m] * factors[m]
    for m in source.arch.vectors:  # norms, and biases (Qwen2) alike: not predicted
        if opts["norm_source"] == "layer0":
            out[m] = weights.get(m, 0).float()
        else:
            out[m] = 0.5 * (weights.get(m, lower).float() + weights.get(m, upper).float())
    return out
