"""Gstack model growth: the operators, FLOPs accounting, the growth-timing guideline, and the growth
branch of the quick run."""

import csv
import math
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from deepen.expand import growth_operators
from deepen.train import growth
from deepen.models.flops import training_flops_per_token
from test_workflow import planned_jobs, variant

SMALL = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)


def models(g):
    torch.manual_seed(0)
    small = LlamaForCausalLM(LlamaConfig(**SMALL))
    torch.manual_seed(0)  # the target as the scratch run draws it, with the seed the growth runs use
    target = LlamaForCausalLM(LlamaConfig(**{**SMALL, "num_hidden_layers": g * SMALL["num_hidden_layers"]}))
    return small, target


def grown(tmp_path, small, g, operator):
    """``small`` saved and grown as the workflow grows it: the plan through the layer executor and reconstruction."""
    from deepen.models.modeling import load_causal_lm

    small.save_pretrained(tmp_path / "small")
    out = growth_operators.grow(tmp_path / "small", tmp_path / operator / "model", g, operator, 0, tmp_path / operator)
    return load_causal_lm(out)


@pytest.mark.parametrize("g", [2, 4])
def test_stacked_layer_i_is_bit_identical_to_small_layer_i_mod_ls(g, tmp_path):
    small, _ = models(g)
    state = grown(tmp_path, small, g, "stack").state_dict()
    ref = small.state_dict()
    Ls = SMALL["num_hidden_layers"]
    for name, tensor in state.items():
        if ".layers." in name:
            layer = int(name.split(".layers.")[1].split(".")[0])
            source = name.replace(f".layers.{layer}.", f".layers.{layer % Ls}.")
            assert torch.equal(tensor, ref[source]), name
        else:
            assert torch.equal(tensor, ref[name]), name  # embeddings, final norm, head
    assert len([n for n in state if n.endswith("mlp.down_proj.weight")]) == g * Ls


def test_zero_init_growth_computes_the_small_model_and_random_growth_does_not(tmp_path):
    ids = torch.randint(0, SMALL["vocab_size"], (2, 12))
    small, target = models(2)
    zero = grown(tmp_path / "zero", small, 2, "zero_init")
    for i in range(2, 4):
        layer = zero.model.layers[i]
        assert not layer.self_attn.o_proj.weight.any() and not layer.mlp.down_proj.weight.any()
        assert torch.equal(layer.mlp.up_proj.weight, small.model.layers[i - 2].mlp.up_proj.weight)
    with torch.no_grad():
        assert torch.allclose(zero(ids).logits, small(ids).logits, atol=1e-5)
    rand = grown(tmp_path / "random", small, 2, "random")
    assert torch.equal(rand.model.layers[1].mlp.up_proj.weight, small.model.layers[1].mlp.up_proj.weight)
    # the layers above: the target's own initialisation, as a scratch run with the same seed draws it
    for i in (2, 3):
        for name, tensor in rand.model.layers[i].state_dict().items():
            assert torch.equal(tensor, target.model.layers[i].state_dict()[name]), (i, name)
    with torch.no_grad():
        assert not torch.allclose(rand(ids).logits, small(ids).logits, atol=1e-3)
    with pytest.raises(growth.GrowthError, match="unknown growth operator"):
        growth_operators.growth_plan("copy", 2, 2, 0)


@pytest.mark.parametrize("g, d", [(2, 0.1), (2, 0.5), (4, 0.25), (4, 3000.0)])
def test_scratch_and_growth_spend_the_same_flops_within_one_step(g, d):
    target = {**SMALL, "num_hidden_layers": 8}
    small = growth.small_config(target, g)
    tokens_per_step, steps = 8 * 32, 40
    b = growth.budget(target, small, 32, tokens_per_step, steps, growth.small_tokens(d, steps, tokens_per_step))
    # The documented formula: 6 N per token plus the attention core, 12 · layers · seq · d.
    n = 8 * (2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 48) + 64 * 32
    assert b["target_flops_per_token"] == 6 * n + 12 * 8 * 32 * 32
    assert b["scratch_flops"] == steps * tokens_per_step * b["target_flops_per_token"]
    one_step = tokens_per_step * b["target_flops_per_token"]
    assert abs(b["small_flops"] + b["grown_flops"] - b["scratch_flops"]) <= one_step / 2
    assert b["small_steps"] == math.ceil(growth.small_tokens(d, steps, tokens_per_step) / tokens_per_step)
    assert b["small_flops_per_token"] < b["target_flops_per_token"]


def test_budget_refuses_a_small_model_that_spends_everything():
    target = {**SMALL, "num_hidden_layers": 8}
    with pytest.raises(growth.GrowthError, match="leave no step"):
        growth.budget(target, growth.small_config(target, 2), 32, 256, 10, 10 * 256 * 3)
    with pytest.raises(growth.GrowthError, match="divide"):
        growth.small_config(target, 3)


def test_guideline_gives_the_papers_7b_example():
    n, tokens = 7e9, 2e12
    d = growth.guideline_tokens(n, 6 * n * tokens)
    assert abs(d - 11.1e9) / 11.1e9 < 0.02
    # The formula itself, at another point.
    assert math.isclose(math.log10(growth.guideline_tokens(4.1e8, 1e21)),
                        0.88 * math.log10(4.1e8) + 163.27 / 21 - 5.74)


def run_plan(*args):
    return subprocess.run([sys.executable, "-m", "deepen.train.growth", "timing", *args], capture_output=True,
                          text=True)


def test_guideline_command_prints_d_and_g_and_refuses_bad_input():
    out = run_plan("--params", "7e9", "--tokens", "2e12")
    assert out.returncode == 0 and "d = 1.111e+10 tokens (11.1B); growth factor g = 4" in out.stdout
    assert "C = 8.4e+22" in out.stdout
    assert run_plan("--params", "7e9", "--flops", "8.4e22").stdout.count("11.1B") == 1
    for args, message in [(("--params=-7e9", "--flops", "1e22"), "params must be a positive number"),
                          (("--params", "7e9", "--tokens", "0"), "tokens must be a positive number"),
                          (("--params", "7e9", "--flops", "1e40"), "flops = 1e+40 is outside"),
                          (("--params", "50", "--flops", "1e22"), "params = 50 is outside")]:
        out = run_plan(*args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
    help_text = run_plan("--help").stdout
    assert "arXiv 2405.15319" in help_text and "410M to 7B" in help_text
    out = run_plan("--params", "3e7", "--tokens", "1e9")
    assert out.returncode == 0 and "extrapolation" in out.stdout


def test_reach_and_speedup_interpolate_between_evaluations():
    curve = [(0.0, 6.0), (10.0, 5.0), (20.0, 4.0)]
    assert growth.reach_flops(curve, 4.5) == 15.0
    assert growth.reach_flops(curve, 6.5) == 0.0
    assert growth.reach_flops(curve, 3.9) is None
    assert growth.speedup(40.0, 15.0) == 0.625 and growth.speedup(40.0, None) is None


def test_quick_run_reports_growth_curves_and_the_speedup_table(quick_run):
    md = (quick_run / "results/report/summary.md").read_text()
    assert "## Model growth (Gstack)" in md and "![growth curves](growth_curves.png)" in md
    assert (quick_run / "results/report/growth_curves.png").read_bytes()[:4] == b"\x89PNG"
    with open(quick_run / "results/report/growth.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["operator"], r["d"]) for r in rows} == {("stack", "0.1"), ("stack", "0.25"), ("zero_init", "0.25"),
                                                       ("random", "0.25")}
    for r in rows:
        # the same budget to within one optimizer step of the target
        one_step = 8 * 32 * training_flops_per_token(
            {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
             "num_attention_heads": 4, "num_key_value_heads": 2}, 32, None, "all")
        assert abs(float(r["total_flops"]) - float(r["scratch_flops"])) <= one_step
        assert r["final_loss"] and float(r["final_loss"]) < 7


def test_adding_a_growth_timing_reruns_only_that_setting(quick_run):
    cfg = variant(quick_run, "growth_d.yaml", lambda c: c["growth"].update(d=[0.1, 0.25, 0.5]))
    jobs = planned_jobs(quick_run, cfg)
    trained = {(rule, wc) for rule, wc in jobs if rule.startswith("growth_") and rule != "growth_report"}
    assert trained == {("growth_small", "g=2, d=0.5, seed=0"), ("growth_grown", "operator=stack, g=2, d=0.5, seed=0")}
    # the exports' cards hold the report's figures
    assert {rule for rule, _ in jobs} == {"growth_small", "growth_grown", "growth_report", "report", "manifest", "all",
                                          "export_model"}
