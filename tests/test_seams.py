"""Seam diagnostics (deepen/evaluate/seams.py) and LESA's shrink factor (deepen/expand/lesa/predictor.py:
shrink_factor)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from deepen.expand import plan as plans
from deepen.models.families import LLAMA
from deepen.expand.execute import generate_stage
from deepen.expand.lesa.predictor import predictor_heldout_stage, predictor_stage
from deepen.expand.reconstruct import reconstruct_stage
from deepen.expand.lesa.predictor import shrink_factor
from deepen.evaluate.seams import seam_diagnostics, skipped

VAL = np.random.default_rng(0).integers(0, 128, 512).astype(np.uint16)


def expanded(tiny_llama_dir, weights_dir, tmp_path, method, opts):
    out = tmp_path / method
    generate_stage(method, {"placement": "top_half", **opts}, tiny_llama_dir, weights_dir, out / "layers")
    reconstruct_stage(method, tiny_llama_dir, tiny_llama_dir, out / "layers/plan.json",
                      out / "layers/new_layers.safetensors", out / "model", max_shard_mb=1)
    model = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32).eval()
    return model, plans.load(out / "layers/plan.json")["plan"]


def test_a_zero_initialised_layer_passes_the_stream_on_and_costs_nothing_to_skip(tiny_llama_dir, weights_dir,
                                                                                 tmp_path):
    model, plan = expanded(tiny_llama_dir, weights_dir, tmp_path, "llama_pro", {"generator": "copy", "zero_init": True})
    seams = seam_diagnostics(model, plan, VAL, 16, 256, 4)
    added = [layer for layer in seams["layers"] if layer["added"]]
    assert [layer["position"] for layer in added] == [i for i, e in enumerate(plan) if e["from"] == "new"] != []
    assert all(layer["cosine"] == pytest.approx(1.0, abs=1e-6) and layer["skip_loss_delta"] == 0.0 for layer in added)
    carried = [layer for layer in seams["layers"] if not layer["added"]]
    assert [layer["base_layer"] for layer in carried] == list(range(6)) and all(l["cosine"] < 0.999 for l in carried)


def test_a_random_layer_changes_the_stream_and_skipping_it_changes_the_loss(tiny_llama_dir, weights_dir, tmp_path):
    model, plan = expanded(tiny_llama_dir, weights_dir, tmp_path, "random", {"generator": "random", "init_std": 0.5})
    seams = seam_diagnostics(model, plan, VAL, 16, 256, 4)
    added = [layer for layer in seams["layers"] if layer["added"]]
    assert added and all(layer["cosine"] < 0.99 and abs(layer["skip_loss_delta"]) > 1e-4 for layer in added)
    # skipping is undone when the context closes
    ids = torch.from_numpy(VAL[:32].astype(np.int64)).view(2, 16)
    with torch.no_grad():
        before = model(ids).logits
        with skipped(model.model.layers[added[0]["position"]]):
            without = model(ids).logits
        after = model(ids).logits
    assert torch.equal(before, after) and not torch.allclose(before, without)


def test_the_shrink_factor_minimises_the_held_out_error():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(8, 5, generator=g)
    pred = 2.5 * true + 0.1 * torch.randn(8, 5, generator=g)  # twice too large: the best factor is about 0.4
    fit = {"shrink": {"pred_dot_true": float((pred * true).sum()), "pred_sq": float((pred * pred).sum())}}
    factor = shrink_factor([fit])
    errors = {a: float(((a * pred - true) ** 2).sum()) for a in (factor - 0.01, factor, factor + 0.01)}
    assert 0.35 < factor < 0.45 and errors[factor] == min(errors.values())
    # a prediction pointing away from the truth is best not made at all: 0 (zero-init), never below
    assert shrink_factor([{"shrink": {"pred_dot_true": -3.0, "pred_sq": 2.0}}]) == 0.0
    assert shrink_factor([{"shrink": {"pred_dot_true": 5.0, "pred_sq": 2.0}}]) == 1.0


def test_lesa_on_raw_weights_scales_its_new_matrices_by_shrink(tiny_llama_dir, weights_dir, tmp_path):
    """``shrink`` with ``svd: false``: a number scales every predicted matrix, ``auto`` by the factor the raw-weight
    predictor's leave-one-out fits recorded; the norms are the neighbours' mean either way."""
    cfg = dict(hidden=16, lr=1e-3, weight_decay=0.01, batch_size=16, epochs=2, norm_weight=5e-4, seed=0)
    predictors, heldout = tmp_path / "predictor_nosvd", tmp_path / "predictor_heldout"
    for m in LLAMA.linear:
        predictor_stage(weights_dir / f"{m}.safetensors", "weights", cfg, predictors / f"{m}.pt",
                        predictors / f"{m}.json")
        predictor_heldout_stage(weights_dir / f"{m}.safetensors", "weights", cfg, None, heldout / f"{m}.json")
    new = {}
    for shrink in (None, 0.5, "auto"):
        opts = {"generator": "lesa", "svd": False, "placement": "top_half",
                **({} if shrink is None else {"shrink": shrink})}
        artifacts = {"predictor_nosvd": predictors, **({"predictor_heldout": heldout} if shrink == "auto" else {})}
        generate_stage("lesa_nosvd", opts, tiny_llama_dir, weights_dir, tmp_path / f"layers_{shrink}", artifacts)
        new[shrink] = load_file(tmp_path / f"layers_{shrink}" / "new_layers.safetensors")
    factors = {m: json.loads((heldout / f"{m}.json").read_text())["shrink_factor"] for m in LLAMA.linear}
    assert all(0.0 <= f <= 1.0 for f in factors.values()) and any(0.0 < f < 1.0 for f in factors.values())
    assert new[None].keys() == new[0.5].keys() == new["auto"].keys() and new[None]
    for name, full in new[None].items():
        m = name.rsplit(".", 1)[1]
        if m in LLAMA.linear:
            assert full.abs().max() > 0, name
            torch.testing.assert_close(new[0.5][name], 0.5 * full, rtol=1e-6, atol=0)
            torch.testing.assert_close(new["auto"][name], factors[m] * full, rtol=1e-6, atol=0)
        else:
            assert torch.equal(new[0.5][name], full) and torch.equal(new["auto"][name], full), name


def test_every_model_of_the_seams_figure_has_a_line_of_its_own():
    """More models than the palette has colours (the SmolLM2 config has 15, matplotlib's default cycle 10): a
    colour comes back only with another dash."""
    from deepen.report.panel_seams import DASHES, line_styles

    models = [f"m{i}" for i in range(45)]
    colour, dash = line_styles(models, palette=[f"c{i}" for i in range(20)])
    assert len({(colour[m], DASHES[dash[m] % len(DASHES)]) for m in models}) == len(models)
    assert colour["m0"] == colour["m20"] and dash["m0"] != dash["m20"]
