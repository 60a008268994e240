"""The aligned base (deepen/expand/align.py) computes the base's function with every layer's heads and neurons
re-ordered towards its lower neighbour's."""

import csv
import json
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM

from deepen.expand.align import ALIGNMENT_FILE, AlignmentRefused, align_base, alignment_plan
from deepen.models.families import LLAMA
from deepen.models.model_dir import read_model_config
from deepen.models.tensorio import CheckpointReader
from test_families import FAMILIES, random_model


def random_base(family: str, path):
    random_model(family).save_pretrained(path)
    return path


def logits(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_the_aligned_base_computes_the_base_function(family, tmp_path):
    base = random_base(family, tmp_path / "base")
    record = align_base(base, tmp_path / "aligned")
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    assert (logits(tmp_path / "aligned", ids) - logits(base, ids)).abs().max() <= 1e-5
    # ... and it did re-order: a random model's neighbours match nowhere near the identity
    assert all(layer["neurons_moved"] > 0.5 for layer in record["layers"])
    assert any(layer["heads_moved"] > 0 for layer in record["layers"])
    assert all(layer["neuron_distance_aligned"] < layer["neuron_distance_raw"] for layer in record["layers"])
    assert json.loads((tmp_path / "aligned" / ALIGNMENT_FILE).read_text())["layers"] == record["layers"]
    # the vectors no permutation indexes (norms) and everything outside the layers are the base's bytes
    a, b = CheckpointReader(tmp_path / "aligned"), CheckpointReader(base)
    for name in b.keys():
        if "norm" in name or ".layers." not in name:
            assert torch.equal(a.get(name), b.get(name)), name


def test_copy_on_the_aligned_base_is_the_model_copy_makes_on_the_base(tmp_path):
    """A copied layer is one whole layer with its rows re-ordered inside, so interpolation copy with ``align: true``
    computes what it computes without; a method that mixes two layers' rows (Avg-DeUS) does not."""
    from deepen.expand.execute import generate_stage
    from deepen.expand.reconstruct import reconstruct_stage
    from deepen.expand.weights import extract_stage

    base = random_base("llama", tmp_path / "base")
    align_base(base, tmp_path / "aligned")
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    out = {}
    for source in ("base", "aligned"):
        root = tmp_path / source
        for m in LLAMA.matrices:
            extract_stage(root, m, tmp_path / f"weights_{source}" / f"{m}.safetensors")
        for method, generator in (("interp_copy", "copy"), ("avg_deus", "average")):
            layers, model = tmp_path / f"layers_{source}_{method}", tmp_path / f"model_{source}_{method}"
            generate_stage(method, {"generator": generator, "placement": "top_half"}, root,
                           tmp_path / f"weights_{source}", layers)
            reconstruct_stage(method, root, root, layers / "plan.json", layers / "new_layers.safetensors", model,
                              max_shard_mb=1)
            out[source, method] = logits(model, ids)
    assert out["base", "interp_copy"].shape[-1] == 128
    assert (out["aligned", "interp_copy"] - out["base", "interp_copy"]).abs().max() <= 1e-5
    assert (out["aligned", "avg_deus"] - out["base", "avg_deus"]).abs().max() > 1e-3


def test_alignment_undoes_a_known_permutation(tmp_path):
    """Layer 1 made an exact re-ordering of layer 0 (its heads within KV groups, its groups, its neurons): aligning
    it to layer 0 must find that re-ordering and give back layer 0's tensors."""
    base = random_base("llama", tmp_path / "base")
    state = AutoModelForCausalLM.from_pretrained(base).state_dict()
    g = torch.Generator().manual_seed(3)
    neurons, groups = torch.randperm(48, generator=g), torch.tensor([1, 0])
    heads = torch.cat([groups[j] * 2 + torch.randperm(2, generator=g) for j in range(2)])
    lay0, lay1 = "model.layers.0.", "model.layers.1."
    hd = 8
    state[lay1 + "self_attn.q_proj.weight"] = state[lay0 + "self_attn.q_proj.weight"].reshape(4, hd, -1)[heads].reshape(32, 32)
    for m in ("k_proj", "v_proj"):
        state[lay1 + f"self_attn.{m}.weight"] = state[lay0 + f"self_attn.{m}.weight"].reshape(2, hd, -1)[groups].reshape(16, 32)
    state[lay1 + "self_attn.o_proj.weight"] = state[lay0 + "self_attn.o_proj.weight"].reshape(32, 4, hd)[:, heads].reshape(32, 32)
    state[lay1 + "mlp.gate_proj.weight"] = state[lay0 + "mlp.gate_proj.weight"][neurons]
    state[lay1 + "mlp.up_proj.weight"] = state[lay0 + "mlp.up_proj.weight"][neurons]
    state[lay1 + "mlp.down_proj.weight"] = state[lay0 + "mlp.down_proj.weight"][:, neurons]
    model = AutoModelForCausalLM.from_pretrained(base)
    model.load_state_dict(state)
    model.save_pretrained(tmp_path / "shuffled")
    align_base(tmp_path / "shuffled", tmp_path / "aligned")
    aligned = CheckpointReader(tmp_path / "aligned")
    for m in LLAMA.linear:
        assert torch.equal(aligned.get(LLAMA.tensor_name(1, m)), aligned.get(LLAMA.tensor_name(0, m))), m


def test_a_family_with_a_tensor_the_permutation_would_have_to_move_is_refused(tmp_path):
    base = random_base("llama", tmp_path / "base")
    # an adapter that names one more per-layer vector, as wide as the MLP: no norm over the residual stream
    reader = CheckpointReader(base)
    arch = replace(LLAMA, layer_tensors={**LLAMA.layer_tensors, "gate_scale": "mlp.up_proj.weight"},
                   norms=LLAMA.norms + ("gate_scale",))
    with pytest.raises(AlignmentRefused, match="gate_scale.*cannot be aligned"):
        alignment_plan(reader, arch, read_model_config(base))


def test_aligned_methods_and_calibrated_lesa_run_in_the_workflow_beside_the_others(quick_run):
    """The quick run's aligned LESA rows (plain, and with `shrink: auto`): the aligned base and its own SVD, predictor
    and leave-one-out fits are made, and the report sets the aligned continuity and predictor rows beside the base's."""
    for path in ("results/aligned/base", "results/aligned/svd/q_proj.safetensors", "results/aligned/predictor/q_proj.pt",
                 "results/report/aligned/svd_continuity.png"):
        assert (quick_run / path).exists(), path
    # its model carries the aligned base's layers (reconstruction checked them against it)
    assert "results/aligned/base" in (quick_run / "results/models/lesa_aligned/README.md").read_text()
    fits = json.loads((quick_run / "results/aligned/predictor_heldout/svd/q_proj.json").read_text())
    assert 0.0 <= fits["shrink_factor"] <= 1.0
    md = (quick_run / "results/report/summary.md").read_text()
    assert "| matrix | ratio | ratio aligned |" in md and "| svd aligned | q_proj |" in md
    assert "`shrink: auto` scales each new matrix by" in md and "](aligned/svd_continuity.png)" in md
    assert "| lesa_aligned | before CPT |" in md and (quick_run / "results/report/seams.png").exists()
    steps0 = {row["method"] for row in csv.DictReader(open(quick_run / "results/report/init.csv"))}
    assert "lesa_aligned" in steps0
