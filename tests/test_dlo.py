"""DLO's model: forced routing reduces to the dense model or to attention only, router labels, the
training loss, and a saved directory that reloads and that lm-eval evaluates."""

import csv
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from deepen.train import dlo

CONFIG = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)


@pytest.fixture
def dense_dir(tmp_path):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG))
    with torch.no_grad():  # norms away from 1, so that a skipped norm would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / "dense")
    return tmp_path / "dense"


IDS = torch.randint(0, CONFIG["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(1))


def test_routers_start_at_zero_and_forced_execution_gives_the_dense_logits(dense_dir):
    model, dense = dlo.from_dense(dense_dir).eval(), LlamaForCausalLM.from_pretrained(dense_dir).eval()
    assert all(not layer.router.weight.any() for layer in model.model.layers)
    model.set_routing("all")
    with torch.no_grad():
        assert (model(IDS).logits - dense(IDS).logits).abs().max() <= 1e-5
    assert model.execution_rates() == [1.0, 1.0, 1.0]


def attention_only_layer(layer, rotary, h):
    """One decoder layer without its MLP, computed from its weights: h + o_proj(softmax(q kᵀ/√d + causal) v)."""
    b, t, d = h.shape
    attn = layer.self_attn
    heads, kv_heads = CONFIG["num_attention_heads"], CONFIG["num_key_value_heads"]
    head_dim = d // heads
    x = layer.input_layernorm(h)
    q = attn.q_proj(x).view(b, t, heads, head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(b, t, kv_heads, head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(b, t, kv_heads, head_dim).transpose(1, 2)
    cos, sin = rotary(h, torch.arange(t).unsqueeze(0))
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)

    def rotate(u):
        half = u.shape[-1] // 2
        return torch.cat((-u[..., half:], u[..., :half]), dim=-1)

    q, k = q * cos + rotate(q) * sin, k * cos + rotate(k) * sin
    k, v = k.repeat_interleave(heads // kv_heads, dim=1), v.repeat_interleave(heads // kv_heads, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return h + attn.o_proj(mixed)


def test_forced_skipping_reduces_each_layer_to_attention_only(dense_dir):
    model = dlo.from_dense(dense_dir).eval()
    model.set_routing("none")
    with torch.no_grad():
        h = model.model.embed_tokens(IDS)
        for layer in model.model.layers:
            h = attention_only_layer(layer, model.model.rotary_emb, h)
        by_hand = model.lm_head(model.model.norm(h))
        assert (model(IDS).logits - by_hand).abs().max() <= 1e-5
    assert model.execution_rates() == [0.0, 0.0, 0.0]


def test_router_labels_are_exactly_the_lowest_similarities_pooled_over_layers():
    torch.manual_seed(0)
    similarities = torch.rand(4, 50)  # L = 4 layers, N = 50 tokens, all distinct
    for capacity in (1.0, 0.9, 0.37, 0.01):
        labels = dlo.router_labels(similarities, capacity)
        k = math.ceil(capacity * 4 * 50)
        assert labels.sum() == k
        threshold = similarities.flatten().sort().values[k - 1]
        assert torch.equal(labels, similarities <= threshold)
    # pooled, not per layer: a layer whose tokens all have low similarity gets every label
    skewed = torch.cat([torch.zeros(1, 10), torch.ones(3, 10)])
    assert dlo.router_labels(skewed, 0.25).sum(dim=1).tolist() == [10, 0, 0, 0]


def test_padding_is_never_labelled_and_does_not_count_towards_the_capacity():
    torch.manual_seed(0)
    similarities = torch.rand(3, 40)
    real = torch.arange(40) < 25  # the last 15 tokens are padding, with the lowest similarities of all
    similarities[:, 25:] = -1.0
    labels = dlo.router_labels(similarities, 0.5, real)
    assert not labels[:, ~real].any()
    k = math.ceil(0.5 * 3 * 25)
    assert labels.sum() == k
    threshold = similarities[:, real].flatten().sort().values[k - 1]
    assert torch.equal(labels[:, real], similarities[:, real] <= threshold)


def test_padded_tokens_never_run_a_routed_mlp(dense_dir):
    model = dlo.from_dense(dense_dir, capacity=0.5, anneal_steps=0)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.router.weight.normal_(0, 0.5)
    mask = torch.ones_like(IDS)
    mask[:, 8:] = 0
    for training in (True, False):
        model.train(training)
        model(IDS, attention_mask=mask, labels=IDS if training else None)
        for layer in model.model.layers:
            assert not (layer.selected & ~mask.bool()).any()
            assert layer.executed == (layer.selected & mask.bool()).sum().item() / mask.sum().item()


def test_unrouted_edge_layers_run_every_token_and_have_no_router(dense_dir):
    model = dlo.from_dense(dense_dir, capacity=0.5, anneal_steps=0, unrouted_edge_layers=1)
    assert [layer.routed for layer in model.model.layers] == [False, True, False]
    assert not any("router" in name for name in model.model.layers[0].state_dict())
    model.train()(IDS, labels=IDS)  # the labels and the BCE cover the routed layer only: half its tokens
    assert model.model.layers[1].capacity == 0.5
    out = model(IDS, labels=IDS)
    assert model.execution_rates() == [1.0, 0.5, 1.0]
    out.loss.backward()
    assert model.model.layers[1].router.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        dense = LlamaForCausalLM.from_pretrained(dense_dir).eval()(IDS).logits
        model.set_routing("all")
        assert (model(IDS).logits - dense).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="no routed layer"):
        dlo.from_dense(dense_dir, unrouted_edge_layers=2)


def test_capacity_anneals_from_one_to_its_final_value():
    assert dlo.annealed_capacity(0, 0.9, 100) == 1.0
    assert math.isclose(dlo.annealed_capacity(50, 0.9, 100), 0.95)
    assert dlo.annealed_capacity(100, 0.9, 100) == dlo.annealed_capacity(500, 0.9, 100) == 0.9


def test_a_training_step_adds_the_router_loss_and_reaches_the_routers(dense_dir):
    model = dlo.from_dense(dense_dir, capacity=0.5, anneal_steps=0).train()
    out = model(IDS, labels=IDS)
    ce = LlamaForCausalLM.from_pretrained(dense_dir).train()(IDS, labels=IDS).loss
    # zero routers: s = 0.5 everywhere, so BCE = ln 2 whatever the labels
    assert math.isclose(model.router_loss.item(), math.log(2), rel_tol=1e-6)
    assert out.loss.item() > ce.item() - 1e-3  # CE over the selected half plus BCE
    out.loss.backward()
    assert all(layer.router.weight.grad.abs().sum() > 0 for layer in model.model.layers)
    # each layer's capacity is now its share of label-1 tokens, which average the configured capacity
    caps = [layer.capacity for layer in model.model.layers]
    assert math.isclose(sum(caps) / len(caps), 0.5, abs_tol=1 / (3 * IDS.numel()))


def test_saved_dlo_directory_reloads_with_identical_logits(dense_dir, tmp_path):
    model = dlo.from_dense(dense_dir)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.router.weight.normal_(0, 0.5)  # routers that skip some tokens
    model.eval()
    model.save_pretrained(tmp_path / "dlo")
    assert json.loads((tmp_path / "dlo/config.json").read_text())["model_type"] == "deepen_dlo"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "dlo").eval()
    assert type(reloaded) is dlo.DLOForCausalLM
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, reloaded(IDS).logits)
    rates = reloaded.execution_rates()
    assert all(0 < r < 1 for r in rates), rates


def test_lm_eval_evaluates_a_dlo_directory(quick_run, tmp_path):
    from deepen.evaluate.harness import evaluate

    model = dlo.from_dense(quick_run / "results/models/llama_pro")
    model.save_pretrained(tmp_path / "dlo")
    (tmp_path / "dlo").joinpath("tokenizer.json").write_bytes(
        (quick_run / "results/models/llama_pro/tokenizer.json").read_bytes())
    (tmp_path / "dlo").joinpath("tokenizer_config.json").write_bytes(
        (quick_run / "results/models/llama_pro/tokenizer_config.json").read_bytes())
    result = evaluate(tmp_path / "dlo", quick_run / "config/tasks", quick_run / "results/eval/task_data",
                      {"tasks": ["deepen_ppl"], "batch_size": 8})
    metrics = result["results"]["deepen_ppl"]
    assert any(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics


def test_sft_examples_have_both_kinds_and_train_on_response_tokens_only(quick_run):
    from deepen.train.sft import build_examples, encode
    from deepen.data.tokenizer import load_tokenizer

    text = (quick_run / "results/data/test.txt").read_text()
    examples = build_examples(text, 200, 2, seed=0)
    kinds = {e["kind"] for e in examples}
    assert kinds == {"continue", "speaker"} and len(examples) == 200
    speaker = next(e for e in examples if e["kind"] == "speaker")
    assert speaker["prompt"].startswith("Who speaks these lines?\n") and speaker["response"].strip().isupper()
    tokenizer = load_tokenizer(quick_run / "results/tokenizer")
    enc = encode(speaker, tokenizer, 256)
    trained = enc["labels"] != -100
    response = tokenizer(speaker["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert enc["input_ids"][trained].tolist() == response  # exactly the response (and its end) is trained on
    assert enc["attention_mask"].sum() == trained.sum() + len(tokenizer(speaker["prompt"], add_special_tokens=False)
                                                               ["input_ids"]) + 1


def test_quick_run_reports_the_sft_variants_and_dlo(quick_run):
    md = (quick_run / "results/report/summary.md").read_text()
    assert "## After SFT: dense variants and DLO" in md and "![DLO execution rates](dlo_execution.png)" in md
    with open(quick_run / "results/report/sft.csv") as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"base", "llama_pro", "dlo"}
    assert float(rows["llama_pro"]["skipped_fraction"]) == 0.0 and rows["llama_pro"]["speed_ratio"] == ""
    assert 0.0 <= float(rows["dlo"]["skipped_fraction"]) <= 1.0 and float(rows["dlo"]["speed_ratio"]) > 0
    assert math.isfinite(float(rows["dlo"]["mlp_time_share"])) and rows["llama_pro"]["mlp_time_share"] == ""
    assert "− llama_pro (paired)" in md
    assert len(rows["dlo"]["execution_rates"].split()) == 6  # the 4-layer base expanded by LLaMA Pro
    assert all(math.isfinite(float(r["heldout_loss"])) for r in rows.values())
    assert (quick_run / "results/report/dlo_execution.png").read_bytes()[:4] == b"\x89PNG"
    saved = AutoModelForCausalLM.from_pretrained(quick_run / "results/sft/dlo/seed0/final")
    assert type(saved) is dlo.DLOForCausalLM
