"""Placement from data (``placement: {auto: N}``): the seams whose base layers change the residual stream least, by
the base's layer profile (deepen/evaluate/seams.py)."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from deepen.evaluate.seams import layer_profile
from deepen.expand import plan as plans
from deepen.expand.execute import generate_stage


def planted(cosines, deltas=None):
    deltas = deltas or [0.1] * len(cosines)
    return [{"layer": i, "cosine": c, "skip_loss_delta": d} for i, (c, d) in enumerate(zip(cosines, deltas))]


def test_auto_places_where_the_planted_cosines_are_highest():
    # layers 1-2 and 5-6 barely change the stream: the seams between them are chosen, nothing else
    profile = planted([0.2, 0.95, 0.97, 0.3, 0.4, 0.9, 0.99, 0.1])
    assert plans.insertion_points({"auto": 2}, 8, profile) == [1, 5]
    assert plans.insertion_points({"auto": 3}, 8, profile) == [1, 4, 5]  # next: (0.4 + 0.9) / 2 of seam 4
    plan = plans.interleave(8, plans.insertion_points({"auto": 2}, 8, profile))
    assert [e["between"] for e in plan if e["from"] == "new"] == [[1, 2], [5, 6]]


def test_auto_by_skip_loss_places_where_skipping_costs_least():
    cosines = [0.5] * 6
    deltas = [2.0, 0.01, 0.02, 1.0, 0.5, 3.0]  # skipping layer 1 or 2 costs almost nothing
    profile = planted(cosines, deltas)
    assert plans.insertion_points({"auto": 1, "by": "skip_loss"}, 6, profile) == [1]
    assert plans.insertion_points({"auto": 2, "by": "skip_loss"}, 6, profile) == [1, 2]
    # the cosines are flat: by cosine, ties go to the top seams
    assert plans.insertion_points({"auto": 2}, 6, profile) == [3, 4]


def test_auto_without_a_profile_is_sized_with_the_top_seams():
    assert plans.insertion_points({"auto": 3}, 8) == [4, 5, 6]


@pytest.mark.parametrize("placement, profile, message", [
    ({"auto": 8}, None, r"1\.\.7"),
    ({"auto": 0}, None, r"1\.\.7"),
    ({"auto": 2, "by": "entropy"}, None, "not a measure"),
    ({"auto": 2}, planted([0.5] * 7), "7 layers, the base 8"),
])
def test_bad_auto_placements(placement, profile, message):
    with pytest.raises(plans.PlanError, match=message):
        plans.insertion_points(placement, 8, profile)


def test_the_layer_profile_of_a_model_finds_its_idle_layers(tiny_llama_dir):
    """A base layer made the identity (its residual outputs zeroed) has cosine 1 and costs nothing to skip; the
    profile says so, and auto placement puts the new layer beside it."""
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    idle = 3
    with torch.no_grad():
        model.model.layers[idle].self_attn.o_proj.weight.zero_()
        model.model.layers[idle].mlp.down_proj.weight.zero_()
    val = np.random.default_rng(0).integers(0, 128, 512).astype(np.uint16)
    profile = layer_profile(model, val, 16, 256, 4)["layers"]
    assert [row["layer"] for row in profile] == list(range(6))
    assert profile[idle]["cosine"] == pytest.approx(1.0, abs=1e-6) and profile[idle]["skip_loss_delta"] == 0.0
    others = [row for row in profile if row["layer"] != idle]
    assert all(row["cosine"] < 0.999 and row["skip_loss_delta"] != 0.0 for row in others)
    # by cosine, the new layer goes beside it (this random model's other layers are no better by skip loss: skipping
    # some lowers its loss, so that measure is planted above)
    assert set(plans.insertion_points({"auto": 1}, 6, profile)) & {idle - 1, idle}


def test_generation_records_the_chosen_seams(tiny_llama_dir, weights_dir, tmp_path):
    profile = planted([0.2, 0.3, 0.99, 0.98, 0.4, 0.1])
    profile_path = tmp_path / "layer_profile.json"
    profile_path.write_text(json.dumps({"layers": profile}))
    out = tmp_path / "layers"
    generate_stage("copy_auto", {"generator": "copy", "placement": {"auto": 2}}, tiny_llama_dir, weights_dir, out,
                   profile_path=profile_path)
    saved = plans.load(out / "plan.json")
    # seams 2 (0.99 and 0.98) and 3 (0.98 and 0.4) score highest
    assert saved["placement"] == {"auto": 2, "by": "cosine", "seams": [2, 3]}
    assert [e["between"] for e in saved["plan"] if e["from"] == "new"] == [[2, 3], [3, 4]]
    with pytest.raises(plans.PlanError, match="none was given"):
        generate_stage("copy_auto", {"generator": "copy", "placement": {"auto": 2}}, tiny_llama_dir, weights_dir,
                       tmp_path / "again")
