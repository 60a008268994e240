"""Extraction, generation and reconstruction on a small random Llama, without Snakemake."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from deepen.expand import plan as plans
from deepen.models.families import LLAMA
from deepen.expand.execute import generate_stage
from deepen.expand.reconstruct import reconstruct_stage
from deepen.models.tensorio import CheckpointReader


def expand(tiny_llama_dir, weights_dir, tmp_path, method, opts):
    layers = tmp_path / "layers" / method
    generate_stage(method, opts, tiny_llama_dir, weights_dir, layers)
    model_dir = tmp_path / "models" / method
    reconstruct_stage(method, tiny_llama_dir, tiny_llama_dir, layers / "plan.json", layers / "new_layers.safetensors",
                      model_dir, max_shard_mb=1)
    return model_dir, plans.load(layers / "plan.json")["plan"]


def test_extraction_stacks_every_layer(tiny_llama_dir, weights_dir):
    base = CheckpointReader(tiny_llama_dir)
    for m in LLAMA.matrices:
        stack = load_file(weights_dir / f"{m}.safetensors")["weights"]
        assert stack.shape[0] == 6
        for layer in range(6):
            assert torch.equal(stack[layer], base.get(LLAMA.tensor_name(layer, m)))


def logits(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(ids).logits, model


def test_llama_pro_preserves_the_base_function(tiny_llama_dir, weights_dir, tmp_path):
    model_dir, plan = expand(tiny_llama_dir, weights_dir, tmp_path, "llama_pro",
                             {"generator": "copy", "placement": {"interval": 2}, "zero_init": True})
    ids = torch.randint(0, 128, (3, 20), generator=torch.Generator().manual_seed(1))
    base_logits, _ = logits(tiny_llama_dir, ids)
    new_logits, model = logits(model_dir, ids)
    assert model.config.num_hidden_layers == len(plan) == 9
    assert (base_logits - new_logits).abs().max().item() <= 1e-5


def test_sharded_output_has_index_and_loads(tiny_llama_dir, weights_dir, tmp_path):
    model_dir, plan = expand(tiny_llama_dir, weights_dir, tmp_path, "interp",
                             {"generator": "copy", "placement": "top_half"})
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 1  # tiny model: one shard of at most 1 MB
    card = (model_dir / "README.md").read_text()
    assert card.startswith("---\n") and "\n# interp: 6 -> 9 layers\n" in card
    out = CheckpointReader(model_dir)
    for i, entry in plans.new_layers(plan):
        lower = entry["between"][0]
        for m in LLAMA.matrices:
            assert torch.equal(out.get(LLAMA.tensor_name(i, m)),
                               CheckpointReader(tiny_llama_dir).get(LLAMA.tensor_name(lower, m)))


@pytest.mark.parametrize("method, opts, layers", [
    ("solar", {"generator": "solar", "m": 2}, 8),
    ("stack", {"generator": "stack", "g": 3}, 18),
])
def test_reused_layers_are_bit_identical(tiny_llama_dir, weights_dir, tmp_path, method, opts, layers):
    model_dir, plan = expand(tiny_llama_dir, weights_dir, tmp_path, method, opts)
    assert len(plan) == layers
    base, out = CheckpointReader(tiny_llama_dir), CheckpointReader(model_dir)
    for i, src in plans.base_layers(plan):
        for m in LLAMA.matrices:
            assert torch.equal(out.get(LLAMA.tensor_name(i, m)), base.get(LLAMA.tensor_name(src, m)))
    for name in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"):
        assert torch.equal(out.get(name), base.get(name))
    assert AutoModelForCausalLM.from_pretrained(model_dir).config.num_hidden_layers == layers
    # what the 'new_only' freeze policy trains: the second copies, as many as the layers added
    added = plans.added_layers(plan)
    assert len(added) == layers - 6
    expected = {"solar": [4, 5], "stack": list(range(6, 18))}[method]  # solar m=2: 0..3 + 2..5
    assert added == expected


def test_average_is_the_mean_of_neighbours_and_zero_init_zeroes_outputs(tiny_llama_dir, weights_dir, tmp_path):
    model_dir, plan = expand(tiny_llama_dir, weights_dir, tmp_path, "avg",
                             {"generator": "average", "placement": "bottom", "zero_init": True})
    base, out = CheckpointReader(tiny_llama_dir), CheckpointReader(model_dir)
    for i, entry in plans.new_layers(plan):
        a, b = entry["between"]
        for m in LLAMA.matrices:
            got = out.get(LLAMA.tensor_name(i, m))
            if m in ("o_proj", "down_proj"):
                assert not got.any()
            else:
                want = 0.5 * (base.get(LLAMA.tensor_name(a, m)) + base.get(LLAMA.tensor_name(b, m)))
                assert torch.allclose(got, want)


def test_random_init_is_seeded(tiny_llama_dir, weights_dir, tmp_path):
    runs = [expand(tiny_llama_dir, weights_dir, tmp_path / str(s), "random",
                   {"generator": "random", "placement": "top_half", "seed": s})[0] for s in (0, 0, 1)]
    name = LLAMA.tensor_name(3, "q_proj")  # the first new layer of top_half on 6 layers
    q = [CheckpointReader(r).get(name) for r in runs]
    assert torch.equal(q[0], q[1]) and not torch.equal(q[0], q[2])
    assert abs(q[0].std().item() - 0.02) < 0.005


def test_two_neighbour_generator_refuses_a_layer_on_top(tiny_llama_dir, weights_dir, tmp_path):
    with pytest.raises(plans.PlanError, match="needs two neighbours"):
        generate_stage("avg", {"generator": "average", "placement": {"interval": 2}}, tiny_llama_dir, weights_dir,
                       tmp_path)
    assert not (tmp_path / "new_layers.safetensors").exists()
