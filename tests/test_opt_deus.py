"""OpT-DeUS alignment: recovering permutations, symmetry of the layer, and the 1/n scaling."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from deepen.models.families import LLAMA
from deepen.expand.ot_align import (OTSettings, align_attention_heads, align_attention_rows, align_mlp_joint,
                             align_mlp_separate, as_permutation, fuse_layers, mapping, neuron_features,
                             transport_plan)
from deepen.models.tensorio import CheckpointReader

HIDDEN, HEADS, KV, INTER = 32, 4, 2, 48
HD = HIDDEN // HEADS


def random_layer(seed):
    g = torch.Generator().manual_seed(seed)
    shapes = {"q_proj": (HIDDEN, HIDDEN), "k_proj": (KV * HD, HIDDEN), "v_proj": (KV * HD, HIDDEN),
              "o_proj": (HIDDEN, HIDDEN), "gate_proj": (INTER, HIDDEN), "up_proj": (INTER, HIDDEN),
              "down_proj": (HIDDEN, INTER), "input_layernorm": (HIDDEN,), "post_attention_layernorm": (HIDDEN,)}
    return {k: (torch.rand(s, generator=g) + 0.5 if len(s) == 1 else torch.randn(s, generator=g) * 0.2).double()
            for k, s in shapes.items()}


def permute_layer(B, group_perm, head_perm_in_group, neuron_perm, noise=1e-4, seed=1):
    """A = B with KV groups, query heads inside groups and MLP neurons permuted, plus noise."""
    rep = HEADS // KV
    q_heads = B["q_proj"].reshape(KV, rep, HD, HIDDEN)[group_perm]
    q_heads = torch.stack([q_heads[g][head_perm_in_group[g]] for g in range(KV)])
    o_cols = B["o_proj"].T.reshape(KV, rep, HD, HIDDEN)[group_perm]
    o_cols = torch.stack([o_cols[g][head_perm_in_group[g]] for g in range(KV)])
    A = dict(B)
    A["q_proj"] = q_heads.reshape(HIDDEN, HIDDEN)
    A["o_proj"] = o_cols.reshape(HIDDEN, HIDDEN).T
    A["k_proj"] = B["k_proj"].reshape(KV, HD, HIDDEN)[group_perm].reshape(KV * HD, HIDDEN)
    A["v_proj"] = B["v_proj"].reshape(KV, HD, HIDDEN)[group_perm].reshape(KV * HD, HIDDEN)
    A["gate_proj"] = B["gate_proj"][neuron_perm]
    A["up_proj"] = B["up_proj"][neuron_perm]
    A["down_proj"] = B["down_proj"][:, neuron_perm]
    g = torch.Generator().manual_seed(seed)
    return {k: v + noise * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in A.items()}


@pytest.fixture
def permuted():
    B = random_layer(0)
    neuron_perm = torch.randperm(INTER, generator=torch.Generator().manual_seed(5))
    A = permute_layer(B, torch.tensor([1, 0]), [torch.tensor([1, 0]), torch.tensor([0, 1])], neuron_perm)
    return A, B, neuron_perm


def test_alignment_recovers_the_permutations_and_fusion_gives_b(permuted):
    A, B, neuron_perm = permuted
    settings = OTSettings()
    plan = transport_plan(neuron_features(A), neuron_features(B), settings)
    # B's neuron j sits at A's row inverse(neuron_perm)[j]
    assert torch.equal(as_permutation(plan), torch.argsort(neuron_perm))
    fused = fuse_layers(A, B, HEADS, KV, settings)
    for k in B:
        assert torch.allclose(fused[k].double(), B[k], atol=5e-4), k


def one_layer_model(layer):
    hidden, inter = layer["q_proj"].shape[1], layer["gate_proj"].shape[0]
    config = LlamaConfig(vocab_size=50, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=1,
                         num_attention_heads=HEADS, num_key_value_heads=KV, max_position_embeddings=32)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).double().eval()
    state = model.state_dict()
    for m, t in layer.items():
        state[LLAMA.tensor_name(0, m)] = t
    model.load_state_dict(state)
    return model


def layer_output(layer):
    ids = torch.arange(20).reshape(2, 10) % 50
    with torch.no_grad():
        return one_layer_model(layer)(ids).logits


def test_head_alignment_and_joint_mlp_plan_are_symmetries_of_the_layer(permuted):
    A, B, _ = permuted  # A is a permuted B: its alignment is not the identity
    settings = OTSettings()
    reference = layer_output(A)
    heads = align_attention_heads(A, B, HEADS, KV, settings)
    assert not torch.equal(heads["q_proj"], A["q_proj"])
    assert torch.allclose(layer_output(heads), reference, atol=1e-10)
    mlp = align_mlp_joint(A, B, settings)
    assert not torch.equal(mlp["gate_proj"], A["gate_proj"])
    assert torch.allclose(layer_output(mlp), reference, atol=1e-10)


def test_per_row_and_separate_plans_are_not_symmetries():
    A, B = random_layer(3), random_layer(4)
    settings = OTSettings()
    reference = layer_output(A)
    assert not torch.allclose(layer_output(align_attention_rows(A, B, settings)), reference, atol=1e-3)
    assert not torch.allclose(layer_output(align_mlp_separate(A, B, settings)), reference, atol=1e-3)


def test_on_the_trained_base_only_heads_and_the_joint_plan_are_symmetries(quick_run):
    """The same property on real weights: layers 2 and 3 of the base the quick run pretrained."""
    base = CheckpointReader(quick_run / "results/base")
    config = json.loads((quick_run / "results/base/config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (HEADS, KV)
    A, B = ({m: base.get(LLAMA.tensor_name(i, m)).double() for m in LLAMA.matrices} for i in (2, 3))
    settings = OTSettings()
    reference = layer_output(A)
    assert torch.allclose(layer_output(align_attention_heads(A, B, HEADS, KV, settings)), reference, atol=1e-10)
    assert torch.allclose(layer_output(align_mlp_joint(A, B, settings)), reference, atol=1e-10)
    assert not torch.allclose(layer_output(align_attention_rows(A, B, settings)), reference, atol=1e-3)
    assert not torch.allclose(layer_output(align_mlp_separate(A, B, settings)), reference, atol=1e-3)


@pytest.mark.parametrize("solver", ["emd", "sinkhorn"])
def test_as_released_differs_by_exactly_one_over_n(solver):
    A, B = random_layer(3), random_layer(4)
    plan = transport_plan(A["gate_proj"], B["gate_proj"], OTSettings(solver=solver))
    n = plan.shape[0]
    assert torch.allclose(plan.sum(1), torch.full((n,), 1.0 / n, dtype=plan.dtype), atol=1e-6)
    rescaled = mapping(plan, OTSettings(solver=solver)) @ A["gate_proj"]
    released = mapping(plan, OTSettings(solver=solver, as_released=True)) @ A["gate_proj"]
    assert torch.allclose(released * n, rescaled, rtol=1e-12, atol=1e-15)
    if solver == "emd":  # the rescaled exact plan moves rows without changing them
        assert torch.allclose(rescaled.norm(), A["gate_proj"].norm())


def test_unknown_options_are_refused():
    A, B = random_layer(3), random_layer(4)
    with pytest.raises(Exception, match="unknown OT solver"):
        transport_plan(A["q_proj"], B["q_proj"], OTSettings(solver="greedy"))
    with pytest.raises(Exception, match="unknown attention alignment"):
        fuse_layers(A, B, HEADS, KV, OTSettings(), attention="columns")


def test_as_released_leaves_o_proj_columns_where_they_were_and_the_corrected_variant_moves_them():
    """The released fusion aligns q's rows but does not move o_proj's columns with them; its residual map is
    then solved on o_proj's own rows. The corrected per-row variant moves o's columns by q's plan."""
    A, B = random_layer(3), random_layer(4)
    released = align_attention_rows(A, B, OTSettings(solver="emd", as_released=True))
    assert torch.equal(released["o_proj"], A["o_proj"])
    corrected = align_attention_rows(A, B, OTSettings(solver="emd"))
    T = mapping(transport_plan(A["q_proj"], B["q_proj"], OTSettings(solver="emd")), OTSettings(solver="emd"))
    assert torch.allclose(corrected["o_proj"], A["o_proj"] @ T.T)
    assert not torch.allclose(corrected["o_proj"], A["o_proj"])


def test_as_released_defaults_to_sinkhorn(monkeypatch, weights_dir, tiny_llama_dir):
    from deepen.expand import ot_align
    from deepen.expand.weights import LayerWeights
    from deepen.expand.methods.contract import LayerSource
    from deepen.expand.methods import METHODS, build_plan

    seen = []
    monkeypatch.setattr(ot_align, "fuse_layers", lambda A, B, h, kv, settings, *a, **k: seen.append(settings) or A)
    source = LayerSource(LayerWeights(weights_dir, LLAMA.matrices), LLAMA,
                         {"num_attention_heads": 4, "num_key_value_heads": 2})
    for opts, solver in (({"as_released": True}, "sinkhorn"), ({}, "emd"), ({"as_released": True, "solver": "emd"}, "emd")):
        opts = {"generator": "opt_deus", "placement": "top_half", "reg": 0.06, "as_released": False, **opts}
        METHODS["opt_deus"].make_layer(opts, source, next(e for e in build_plan(opts, 6) if e["from"] == "new"))
        assert seen[-1].solver == solver and seen[-1].as_released == opts.get("as_released", False)
