"""Extending deepen without touching its files: a method registered here, with an option of its own, is checked by
the config, planned, generated, reconstructed and trained for a step like the methods that ship."""

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from deepen.arch import LLAMA
from deepen.config import ConfigError, validate_config
from deepen.methods import METHODS, Option, method
from deepen.pipeline import continue_pretraining, generate_stage, reconstruct_stage
from deepen.tensorio import CheckpointReader

SCALE = Option({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, 0.5,
               "factor on the lower neighbour's linear matrices")


@pytest.fixture
def scaled_copy():
    """A method: each new layer is its lower neighbour with the linear matrices scaled by ``scale``."""

    @method("scaled_copy", options={"scale": SCALE})
    def make(opts, source, entry):
        layer = source.layer(entry["between"][0])
        return {m: t * opts["scale"] if m in source.arch.linear else t for m, t in layer.items()}

    yield "scaled_copy"
    del METHODS["scaled_copy"]


def quick_config(methods: dict) -> dict:
    cfg = yaml.safe_load((REPO / "config/quick.yaml").read_text())
    cfg["methods"] = methods
    cfg["report"].update(target_loss=next(iter(methods)), reference=next(iter(methods)), claims=[])
    cfg["sft"]["expansion"] = next(iter(methods))
    return cfg


def validate(cfg):
    return validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)


def test_the_config_checks_and_fills_a_registered_methods_options(scaled_copy):
    out = validate(quick_config({"half": {"generator": "scaled_copy", "placement": {"interval": 2}}}))
    assert out["methods"]["half"]["scale"] == 0.5  # the declared default, filled in
    with pytest.raises(ConfigError, match=r"methods\.half\.scale: 2 is greater than the maximum of 1"):
        validate(quick_config({"half": {"generator": "scaled_copy", "scale": 2}}))
    with pytest.raises(ConfigError, match=r"methods\.half\.scal: not an option of generator 'scaled_copy'; "
                                          r"did you mean 'scale'\?"):
        validate(quick_config({"half": {"generator": "scaled_copy", "scal": 0.5}}))
    with pytest.raises(ConfigError, match=r"methods\.half\.generator: unknown generator 'scaled_cop'; did you mean "
                                          r"'scaled_copy'\?"):
        validate(quick_config({"half": {"generator": "scaled_cop"}}))


def test_a_registered_method_runs_through_generation_reconstruction_and_cpt(scaled_copy, tiny_llama_dir, weights_dir,
                                                                          tmp_path):
    opts = {"generator": "scaled_copy", "placement": {"interval": 3}, "zero_init": False, "scale": 0.25}
    layers, model_dir = tmp_path / "layers", tmp_path / "model"
    generate_stage("quarter", opts, tiny_llama_dir, weights_dir, layers)
    reconstruct_stage("quarter", tiny_llama_dir, tiny_llama_dir, layers / "plan.json",
                      layers / "new_layers.safetensors", model_dir, max_shard_mb=1)
    plan = json.loads((layers / "plan.json").read_text())["plan"]
    assert [e.get("between") for e in plan if e["from"] == "new"] == [[2, 3], [5, None]]
    base, out = CheckpointReader(tiny_llama_dir), CheckpointReader(model_dir)
    for i, entry in enumerate(plan):
        if entry["from"] == "new":
            lower = entry["between"][0]
            for m in LLAMA.linear:
                want = 0.25 * base.get(LLAMA.tensor_name(lower, m))
                assert torch.allclose(out.get(LLAMA.tensor_name(i, m)), want), (i, m)

    tokens = (np.arange(8000) * 7 % 128).astype(np.uint16)
    cfg = {"steps": 1, "batch_size": 4, "seq_len": 16, "lr": 1e-3, "warmup_steps": 0, "weight_decay": 0.0,
           "grad_clip": 1.0, "schedule": "constant", "eval_interval": 1, "eval_tokens": 256, "checkpoint_interval": 100,
           "keep_checkpoints": False, "plateau": None, "seed": 0, "freeze": "new_only"}
    work = tmp_path / "cpt"
    continue_pretraining("quarter", model_dir, tokens, tokens[:2048], cfg, work, work / "final", work / "info.json")
    info = json.loads((work / "info.json").read_text())
    assert (info["generator"], info["added_layers"], info["steps"]) == ("scaled_copy", [3, 7], 1)
    assert [m["step"] for m in map(json.loads, (work / "metrics.jsonl").read_text().splitlines())] == [0, 1]


def test_the_options_every_method_takes_are_the_schemas_and_each_declared_option_is_described():
    from deepen.methods import COMMON_OPTIONS

    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    assert set(schema["properties"]["methods"]["additionalProperties"]["properties"]) == set(COMMON_OPTIONS)
    assert {"copy", "average", "random", "solar", "stack", "lesa", "opt_deus"} <= set(METHODS)
    for spec in METHODS.values():
        assert all(option.description for option in spec.options.values()), spec.name
