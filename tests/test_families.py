"""Every method of the default config on a tiny random model of each supported family: the expanded
model loads with AutoModelForCausalLM and runs, and LLaMA Pro keeps the base's function."""

import json
import math

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from conftest import REPO
from deepen.models.families import UnsupportedFamily, family_for
from deepen.expand.execute import generate_stage
from deepen.expand.lesa.predictor import predictor_stage
from deepen.expand.lesa.svd import svd_stage
from deepen.expand.reconstruct import reconstruct_stage
from deepen.expand.weights import extract_stage
from deepen.models.tensorio import CheckpointReader

DEFAULT_METHODS = yaml.safe_load((REPO / "config/toy.yaml").read_text())["methods"]
SIZES = dict(vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=6, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)


def family_config(family: str):
    import transformers as tf

    if family == "llama":
        return tf.LlamaConfig(**SIZES, tie_word_embeddings=False)
    if family == "smollm2_shape":  # SmolLM2's layout, narrower: 9 heads, 3 KV heads, embeddings tied to the head
        return tf.LlamaConfig(**{**SIZES, "hidden_size": 72, "num_attention_heads": 9, "num_key_value_heads": 3},
                              tie_word_embeddings=True)
    if family == "mistral":
        return tf.MistralConfig(**SIZES, sliding_window=16, tie_word_embeddings=False)
    if family == "qwen2":
        return tf.Qwen2Config(**SIZES, tie_word_embeddings=False)
    if family == "qwen3":
        return tf.Qwen3Config(**SIZES, head_dim=8, tie_word_embeddings=False)
    if family == "gemma2":
        return tf.Gemma2Config(**SIZES, head_dim=8, query_pre_attn_scalar=8, sliding_window=16)
    if family == "gemma3":
        return tf.Gemma3TextConfig(**SIZES, head_dim=8, query_pre_attn_scalar=8, sliding_window=16)
    raise ValueError(family)


FAMILIES = ["llama", "smollm2_shape", "mistral", "qwen2", "qwen3", "gemma2", "gemma3"]


def random_model(family: str):
    """A tiny model of ``family`` drawn with seed 0, its norms and biases random too (so that a wrong copy shows)."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(family_config(family))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.uniform_(-0.5, 0.5) if family.startswith("gemma") or name.endswith("bias") else p.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory):
    """A random tiny model of the family with random norms and biases, its stacks, SVDs and predictors."""
    root = tmp_path_factory.mktemp(request.param)
    model = random_model(request.param)
    model.save_pretrained(root / "base")
    arch = family_for(model.config.model_type)
    for m in arch.matrices:
        extract_stage(root / "base", m, root / "weights" / f"{m}.safetensors")
    cfg = dict(hidden=16, lr=1e-3, weight_decay=0.01, batch_size=16, epochs=1, norm_weight=5e-4, seed=0)
    for m in arch.linear:
        svd_stage(root / "weights" / f"{m}.safetensors", root / "svd" / f"{m}.safetensors", root / "svd" / f"{m}.json")
        predictor_stage(root / "svd" / f"{m}.safetensors", "V", cfg, root / "predictor" / f"{m}.pt",
                        root / "predictor" / f"{m}.json")
        predictor_stage(root / "weights" / f"{m}.safetensors", "weights", cfg, root / "predictor_nosvd" / f"{m}.pt",
                        root / "predictor_nosvd" / f"{m}.json")
    return request.param, root, arch


def expand(root, method: str, opts: dict):
    opts = {"placement": "top_half", **{k: v for k, v in opts.items() if k not in ("freeze", "seeds")}}
    predictors = "predictor" if opts.get("svd", True) else "predictor_nosvd"
    artifacts = {"svd": root / "svd", predictors: root / predictors}
    generate_stage(method, opts, root / "base", root / "weights", root / "layers" / method, artifacts)
    reconstruct_stage(method, root / "base", root / "base", root / "layers" / method / "plan.json",
                      root / "layers" / method / "new_layers.safetensors", root / "models" / method, max_shard_mb=1)
    return root / "models" / method


def forward(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(ids).logits, model


def test_every_default_method_makes_a_loadable_model(family_model):
    family, root, arch = family_model
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(1))
    base_logits, base = forward(root / "base", ids)
    for method, opts in DEFAULT_METHODS.items():
        model_dir = expand(root, method, opts)
        plan = json.loads((root / "layers" / method / "plan.json").read_text())["plan"]
        logits, model = forward(model_dir, ids)
        assert model.config.model_type == base.config.model_type, method
        assert model.config.num_hidden_layers == len(plan) > 6, method
        assert torch.isfinite(logits).all(), (family, method)
        if isinstance(getattr(model.config, "layer_types", None), list):
            assert len(model.config.layer_types) == len(plan)
        if method == "llama_pro":
            assert (logits - base_logits).abs().max().item() <= 1e-5, family


def test_tied_embeddings_stay_one_tensor_through_every_method_and_a_save(family_model, tmp_path):
    family, root, arch = family_model
    base = AutoModelForCausalLM.from_pretrained(root / "base")
    if not base.config.tie_word_embeddings:
        pytest.skip(f"{family} has untied embeddings")
    for method, opts in DEFAULT_METHODS.items():
        model_dir = root / "models" / method
        if not model_dir.exists():
            expand(root, method, opts)
        names = CheckpointReader(model_dir).keys()
        assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names, method
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        assert model.config.tie_word_embeddings, method
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), method
    model.save_pretrained(tmp_path / "saved")
    assert "lm_head.weight" not in CheckpointReader(tmp_path / "saved").keys()
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    assert again.lm_head.weight.data_ptr() == again.model.embed_tokens.weight.data_ptr()


def test_family_specific_tensors_are_carried(family_model):
    family, root, arch = family_model
    model_dir = expand(root, "avg_check", {"generator": "average"})
    expanded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(root / "base", dtype=torch.float32)
    plan = json.loads((root / "layers/avg_check/plan.json").read_text())["plan"]
    position, entry = next((i, e) for i, e in enumerate(plan) if e["from"] == "new")
    low, high = entry["between"]
    new, lower, upper = (dict(m.named_parameters()) for m in (expanded.model.layers[position],
                                                               base.model.layers[low], base.model.layers[high]))
    assert set(new) == set(lower)
    for name in new:
        assert torch.allclose(new[name], 0.5 * (lower[name] + upper[name]), atol=1e-6), (family, name)
    extra = {"qwen2": "self_attn.q_proj.bias", "qwen3": "self_attn.q_norm.weight",
             "gemma2": "pre_feedforward_layernorm.weight", "gemma3": "self_attn.k_norm.weight"}.get(family)
    if extra:
        assert extra in new


def test_qwen2_biases_move_with_their_rows_under_head_alignment():
    from deepen.expand.ot_align import OTSettings, align_attention_heads

    torch.manual_seed(0)
    heads, kv, hd, d = 4, 2, 8, 32
    A = {"q_proj": torch.randn(heads * hd, d), "k_proj": torch.randn(kv * hd, d), "v_proj": torch.randn(kv * hd, d),
         "o_proj": torch.randn(d, heads * hd), "q_bias": torch.randn(heads * hd), "k_bias": torch.randn(kv * hd),
         "v_bias": torch.randn(kv * hd)}
    A = {k: v.double() for k, v in A.items()}
    # B: A with its KV groups swapped (and the query heads with them)
    swap_q = torch.cat([torch.arange(16, 32), torch.arange(0, 16)])
    swap_kv = torch.cat([torch.arange(8, 16), torch.arange(0, 8)])
    B = {"q_proj": A["q_proj"][swap_q], "k_proj": A["k_proj"][swap_kv], "v_proj": A["v_proj"][swap_kv],
         "o_proj": A["o_proj"][:, swap_q], "q_bias": A["q_bias"][swap_q], "k_bias": A["k_bias"][swap_kv],
         "v_bias": A["v_bias"][swap_kv]}
    out = align_attention_heads(A, B, heads, kv, OTSettings())
    for name in B:
        assert torch.allclose(out[name], B[name]), name


@pytest.mark.parametrize("model_type", ["mixtral", "phi3", "falcon"])
def test_unsupported_model_types_are_named(model_type, tmp_path):
    with pytest.raises(UnsupportedFamily) as err:
        family_for(model_type)
    message = str(err.value)
    assert repr(model_type) in message and "gemma2, gemma3_text, llama, mistral, qwen2, qwen3" in message


class NoTokenizer:
    """train() saves a tokenizer beside the model; these tests have none to save."""

    def save_pretrained(self, path):
        pass


def test_continued_pretraining_of_a_tied_model_keeps_one_tensor(family_model, tmp_path):
    import numpy as np

    from deepen.train.trainer import train

    family, root, arch = family_model
    if family != "smollm2_shape":
        pytest.skip("one tied family is enough")
    expand(root, "llama_pro", DEFAULT_METHODS["llama_pro"])
    model = AutoModelForCausalLM.from_pretrained(root / "models" / "llama_pro", dtype=torch.float32)
    before = model.model.embed_tokens.weight.detach().clone()
    tokens = np.random.default_rng(0).integers(0, 128, 4000).astype(np.uint16)
    cfg = dict(steps=3, batch_size=2, seq_len=16, lr=1e-2, eval_interval=3, eval_tokens=64, seed=0, freeze="all")
    train(model, NoTokenizer(), tokens, tokens, cfg, tmp_path / "work", tmp_path / "final")
    assert "lm_head.weight" not in CheckpointReader(tmp_path / "final").keys()
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "final", dtype=torch.float32)
    assert trained.lm_head.weight.data_ptr() == trained.model.embed_tokens.weight.data_ptr()
    assert not torch.equal(trained.model.embed_tokens.weight, before)  # it trained, as one tensor


def test_a_cpt_step_runs_for_every_family_with_the_attention_it_takes(family_model, tmp_path):
    """attn_implementation auto: sdpa where the class supports it, eager for Gemma 2 (transformers refuses sdpa
    there); a kernel the class cannot take is a config error naming the family."""
    import numpy as np

    from deepen.models.families import attention_for, causal_lm_class
    from deepen.workflow.config_check import attention_problems
    from deepen.train.trainer import train

    family, root, _ = family_model
    model = AutoModelForCausalLM.from_pretrained(root / "base", dtype=torch.float32)
    expected = "eager" if family == "gemma2" else "sdpa"
    assert attention_for(type(model), "auto") == expected
    tokens = np.random.default_rng(0).integers(0, 128, 4000).astype(np.uint16)
    cfg = dict(steps=2, batch_size=2, seq_len=16, lr=1e-3, eval_interval=2, eval_tokens=64, seed=0, freeze="all")
    train(model, NoTokenizer(), tokens, tokens, cfg, tmp_path / "work", tmp_path / "final")
    assert model.config._attn_implementation == expected
    losses = [json.loads(l)["val_loss"] for l in (tmp_path / "work/metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "final").config.model_type == model.config.model_type
    config = {"cpt": {"attn_implementation": "sdpa"}, "sft": {"enabled": False}}
    problems = attention_problems(config, model.config.model_type)
    if family == "gemma2":
        assert problems == ["cpt.attn_implementation: 'sdpa' is not available for the base's family 'gemma2' "
                            "(Gemma2ForCausalLM; available: eager, or auto)"]
        assert causal_lm_class("gemma2").__name__ == "Gemma2ForCausalLM"
    else:
        assert problems == []
