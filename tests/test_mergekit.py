"""mergekit passthrough configs out of every model made of copies, and in as a method (``generator: mergekit``),
without mergekit: the exported YAML against mergekit's documented passthrough schema, the round trip export ->
import -> reconstruct bit for bit, a real-world config, and the configs deepen refuses, with the reason."""

import copy
import json

import pytest
import torch
import yaml
from jsonschema import Draft202012Validator

from conftest import REPO
from deepen.expand import mergekit_config
from deepen.expand import plan as plans
from deepen.expand.execute import generate_stage
from deepen.expand.reconstruct import MERGEKIT_FILE, layer_copies, reconstruct_stage
from deepen.models.families import LLAMA
from deepen.models.tensorio import CheckpointReader
from deepen.workflow.config_check import ConfigError, validate_config

# mergekit's passthrough config as its README documents it (slices of one source each: a model and a layer_range
# [start, end); parameters, of which passthrough reads `scale`: a number, or rules {filter, value} tried in order, a
# rule without a filter matching every tensor; merge_method; dtype), written here rather than imported
NUMBER_OR_GRADIENT = {"oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}
SCALE = {"oneOf": [NUMBER_OR_GRADIENT, {"type": "array", "items": {
    "type": "object", "additionalProperties": False, "required": ["value"],
    "properties": {"filter": {"type": "string"}, "value": NUMBER_OR_GRADIENT}}}]}
PASSTHROUGH_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["slices", "merge_method"],
    "properties": {
        "merge_method": {"const": "passthrough"},
        "dtype": {"enum": ["float32", "float16", "bfloat16"]},
        "slices": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["sources"],
            "properties": {"sources": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["model", "layer_range"],
                "properties": {
                    "model": {"type": "string"},
                    "layer_range": {"type": "array", "items": {"type": "integer", "minimum": 0},
                                    "minItems": 2, "maxItems": 2},
                    "parameters": {"type": "object", "additionalProperties": False,
                                   "properties": {"scale": SCALE}}}}}}}}}}

EXPORTED = {  # row -> options: every static plan and copy the quick and toy configs use
    "llama_pro": {"generator": "copy", "placement": {"interval": 2}, "zero_init": True},
    "solar": {"generator": "solar", "m": 2},
    "stack": {"generator": "stack", "g": 2},
    "interp_copy": {"generator": "copy", "placement": "top_half"},
    "llama_pro_explicit": {"generator": "copy", "placement": {"explicit": [0, 5]}, "zero_init": True},
}


def expand(base, weights, tmp_path, name, opts):
    layers, model = tmp_path / "layers" / name, tmp_path / "models" / name
    generate_stage(name, opts, base, weights, layers)
    reconstruct_stage(name, base, base, layers / "plan.json", layers / "new_layers.safetensors", model,
                      max_shard_mb=1)
    return model, plans.load(layers / "plan.json")


def same_bits(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.contiguous().view(torch.uint8),
                                                                     b.contiguous().view(torch.uint8))


def layout(plan: list[dict]) -> list[dict]:
    """A plan's entries without what only the importer records (the scale rules it read)."""
    return [{k: v for k, v in e.items() if k != "scale"} for e in plan]


@pytest.mark.parametrize("name", list(EXPORTED))
def test_a_model_of_copies_exports_a_passthrough_config_that_imports_back_bit_for_bit(tiny_llama_dir, weights_dir,
                                                                                      tmp_path, name):
    model, info = expand(tiny_llama_dir, weights_dir, tmp_path, name, EXPORTED[name])
    exported = yaml.safe_load((model / MERGEKIT_FILE).read_text())
    assert not list(Draft202012Validator(PASSTHROUGH_SCHEMA).iter_errors(exported))
    assert exported["dtype"] == "float32" and "mergekit.yaml" in (model / "README.md").read_text()
    if name == "llama_pro":  # after every second layer, a copy with its residual outputs zeroed
        assert [s["sources"][0]["layer_range"] for s in exported["slices"]] == [[0, 2], [1, 2], [2, 4], [3, 4],
                                                                              [4, 6], [5, 6]]
        assert exported["slices"][1]["sources"][0]["parameters"]["scale"] == [
            {"filter": "self_attn.o_proj.weight", "value": 0.0}, {"filter": "mlp.down_proj.weight", "value": 0.0},
            {"value": 1.0}]

    again, info_again = expand(tiny_llama_dir, weights_dir, tmp_path / "imported", name,
                               {"generator": "mergekit", "config": str(model / MERGEKIT_FILE)})
    assert layer_copies(info_again) == layer_copies(info)  # which base layer each output layer copies, how scaled
    if name != "interp_copy":  # an unscaled copy comes back as a repeated base layer, the same tensors
        assert layout(info_again["plan"]) == layout(info["plan"])
    assert plans.added_layers(info_again["plan"]) == plans.added_layers(info["plan"])  # what new_only trains
    a, b = CheckpointReader(model), CheckpointReader(again)
    assert sorted(a.keys()) == sorted(b.keys())
    assert all(same_bits(a.get(k), b.get(k)) for k in a.keys())
    assert json.loads((model / "config.json").read_text()) == json.loads((again / "config.json").read_text())
    # and the imported model exports the same config again
    assert yaml.safe_load((again / MERGEKIT_FILE).read_text())["slices"] == exported["slices"]


def test_a_computed_method_says_no_passthrough_config_makes_it(tiny_llama_dir, weights_dir, tmp_path):
    for name, opts in {"avg": {"generator": "average", "placement": "top_half"},
                       "random": {"generator": "random", "placement": "top_half"}}.items():
        model, info = expand(tiny_llama_dir, weights_dir, tmp_path, name, opts)
        assert not (model / MERGEKIT_FILE).exists() and "copies" not in info
        assert "No mergekit passthrough config makes this model" in (model / "README.md").read_text()


# a SOLAR-style frankenmerge as people share them, for a 6-layer base: a block repeated, an appended copy with
# its outputs zeroed (filters as people write them: pieces of names), and one slice with its attention scaled
FRANKENMERGE = """\
slices:
  - sources:
      - model: someone/tiny-llama
        layer_range: [0, 4]
  - sources:
      - model: someone/tiny-llama
        layer_range: [2, 6]
        parameters:
          scale:
            - filter: q_proj
              value: 0.5
            - value: 1.0
  - sources:
      - model: someone/tiny-llama
        layer_range: [5, 6]
        parameters:
          scale:
            - filter: o_proj
              value: 0.0
            - filter: down_proj
              value: 0.0
            - value: 1.0
merge_method: passthrough
dtype: bfloat16
"""


def test_a_shared_frankenmerge_runs_as_a_method(tiny_llama_dir, weights_dir, tmp_path):
    path = tmp_path / "frankenmerge.yaml"
    path.write_text(FRANKENMERGE)
    model, info = expand(tiny_llama_dir, weights_dir, tmp_path, "franken", {"generator": "mergekit",
                                                                           "config": str(path)})
    plan = info["plan"]
    assert len(plan) == 9 and [e["from"] for e in plan] == ["base"] * 4 + ["new"] * 5
    base, out = CheckpointReader(tiny_llama_dir), CheckpointReader(model)
    for position, src in zip(range(4, 9), [2, 3, 4, 5, 5]):
        for m in LLAMA.matrices:
            got, want = out.get(LLAMA.tensor_name(position, m)), base.get(LLAMA.tensor_name(src, m))
            if position < 8:
                assert torch.equal(got, want * 0.5 if m == "q_proj" else want), (position, m)
            else:
                assert (not got.any()) if m in ("o_proj", "down_proj") else torch.equal(got, want)
    assert plans.added_layers(plan) == [4, 5, 6, 7, 8]
    # the exported config says the same with full tensor names (dtype: the base's, float32)
    exported = yaml.safe_load((model / MERGEKIT_FILE).read_text())
    assert [s["sources"][0]["layer_range"] for s in exported["slices"]] == [[0, 4], [2, 6], [5, 6]]
    assert exported["slices"][1]["sources"][0]["parameters"]["scale"][0] == {"filter": "self_attn.q_proj.weight",
                                                                             "value": 0.5}


def check(cfg):
    return validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks")


REFUSED = {
    "merge_method: slerp": ("merge_method: passthrough", "merge_method: slerp",
                            "merge_method: 'slerp'; deepen reads 'passthrough' only"),
    "two models": ("model: someone/tiny-llama\n        layer_range: [0, 4]", "model: other/model\n"
                   "        layer_range: [0, 4]", "several source models"),
    "gradient": ("value: 0.5", "value: [0.0, 1.0]", "a list of values is a gradient"),
    "filter naming a layer": ("filter: q_proj", "filter: layers.2.self_attn", "names layers"),
    "filter matching nothing": ("filter: q_proj", "filter: c_attn", "picks no tensor of a llama layer"),
    "beyond the base": ("layer_range: [5, 6]", "layer_range: [5, 40]", "but the base has 8 layers"),
    "two sources": ("  - sources:\n      - model: someone/tiny-llama\n        layer_range: [0, 4]",
                    "  - sources:\n      - model: someone/tiny-llama\n        layer_range: [0, 4]\n"
                    "      - model: someone/tiny-llama\n        layer_range: [0, 4]", "exactly one source per slice"),
    "unknown key": ("dtype: bfloat16", "dtype: bfloat16\nweight: 0.5", "weight: not read by deepen"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_the_config_check_refuses_what_is_not_a_passthrough_of_copies(tmp_path, case):
    old, new, message = REFUSED[case]
    assert FRANKENMERGE.count(old) == 1
    path = tmp_path / "merge.yaml"
    path.write_text(FRANKENMERGE.replace(old, new))
    cfg = copy.deepcopy(yaml.safe_load((REPO / "config/toy.yaml").read_text()))
    cfg["methods"]["franken"] = {"generator": "mergekit", "config": str(path)}
    with pytest.raises(ConfigError) as e:
        check(cfg)
    assert "methods.franken" in str(e.value) and message in str(e.value), str(e.value)


def test_the_quick_run_exports_solar_and_llama_pro_and_says_why_not_for_lesa(quick_run):
    for row in ("solar", "llama_pro", "stack"):
        exported = yaml.safe_load((quick_run / f"results/models/{row}" / MERGEKIT_FILE).read_text())
        assert not list(Draft202012Validator(PASSTHROUGH_SCHEMA).iter_errors(exported)), row
    for row in ("lesa", "opt_deus", "random"):
        assert not (quick_run / f"results/models/{row}" / MERGEKIT_FILE).exists()
        cards = list((quick_run / f"results/models/{row}").glob("**/README.md"))
        assert cards and all("No mergekit passthrough config makes this model" in p.read_text() for p in cards)
    # the config the quick run reads as a method comes back out with the same slices, and its zero-output copies
    # start the deeper model exactly where the base is
    read_in = mergekit_config.read(REPO / "config/mergekit/quick_appended.yaml")
    written = mergekit_config.read(quick_run / "results/models/appended" / MERGEKIT_FILE)

    def factors(config):
        return [(layer, mergekit_config.scales(rules, LLAMA, layer, at))
                for at, (layer, rules) in enumerate(mergekit_config.layers_of(config))]

    assert factors(written) == factors(read_in) and len(factors(written)) == 6
    base, appended = (json.loads((quick_run / f"results/init/{row}.json").read_text()) for row in ("base", "appended"))
    assert appended["layers"] == base["layers"] + 2
    assert appended["val_loss"] == pytest.approx(base["val_loss"], abs=1e-5)
