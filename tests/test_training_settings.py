"""Training settings for large models: micro batches, bf16 frozen weights, gradient checkpointing, attention
kernels, precision. Each is checked against the plain run it must reproduce."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from deepen.models.modeling import load_causal_lm
from deepen.train.metrics import read_metrics
from deepen.train.trainer import cast_frozen_linears, micro_batches, train

CFG = {"steps": 6, "batch_size": 8, "seq_len": 16, "lr": 3e-3, "warmup_steps": 1, "weight_decay": 0.0,
       "grad_clip": 1.0, "schedule": "cosine", "eval_interval": 3, "eval_tokens": 256, "checkpoint_interval": 100,
       "keep_checkpoints": False, "plateau": None, "seed": 0}
# a stream with structure to learn: a fixed walk through the vocabulary with random restarts
_rng = np.random.default_rng(0)
TOKENS = ((np.arange(20_000) * 7 + np.repeat(_rng.integers(0, 128, 200), 100)) % 128).astype(np.uint16)
NEW_LAYERS = [3, 5]  # trained under new_only; 0-2 and 4 stay frozen, so gradients cross frozen layers


def run(model_dir, tmp_path, name, freeze="new_only", **settings):
    model = load_causal_lm(model_dir)
    work = tmp_path / name
    train(model, None, TOKENS, TOKENS[:4096], {**CFG, "freeze": freeze, **settings}, work, work / "final",
          trainable_layers=NEW_LAYERS)
    return read_metrics(work / "metrics.jsonl"), load_file(work / "final/model.safetensors")


def val_losses(metrics):
    return np.array([m["val_loss"] for m in metrics])


def assert_same_run(a, b, atol, weights=None):
    (ma, wa), (mb, wb) = a, b
    assert [m["step"] for m in ma] == [m["step"] for m in mb]
    np.testing.assert_allclose(val_losses(ma), val_losses(mb), atol=atol, rtol=0)
    assert wa.keys() == wb.keys()
    worst = max((wa[k].float() - wb[k].float()).abs().max().item() for k in weights or wa)
    assert worst <= atol * 10, f"final weights differ by {worst}"


def test_micro_batches_split_each_process_share():
    assert micro_batches(16, 1, None) == (16, 1)
    assert micro_batches(16, 2, 2) == (2, 4)
    with pytest.raises(ValueError, match="micro_batch_size 3 does not divide the 8 sequences per process"):
        micro_batches(16, 2, 3)
    with pytest.raises(ValueError, match="not divisible by the 3 training processes"):
        micro_batches(16, 3, None)


@pytest.mark.parametrize("freeze", ["all", "new_only"])
def test_accumulated_micro_batches_equal_the_whole_batch(tiny_llama_dir, tmp_path, freeze):
    whole = run(tiny_llama_dir, tmp_path, "whole", freeze)
    accumulated = run(tiny_llama_dir, tmp_path, "micro", freeze, micro_batch_size=2)
    assert val_losses(whole[0])[-1] < val_losses(whole[0])[0] - 0.01, "the run did not train"
    assert_same_run(whole, accumulated, 1e-5)


def test_gradient_checkpointing_reaches_the_layers_above_frozen_ones(tiny_llama_dir, tmp_path):
    plain = run(tiny_llama_dir, tmp_path, "plain")
    checkpointed = run(tiny_llama_dir, tmp_path, "ckpt", gradient_checkpointing=True)
    assert_same_run(plain, checkpointed, 1e-5)
    base = load_file(tiny_llama_dir / "model.safetensors")
    moved = [k for k in base if not torch.equal(base[k], checkpointed[1][k])]
    assert moved and all(k.startswith(("model.layers.3.", "model.layers.5.")) for k in moved), moved


def test_bf16_frozen_weights_compute_what_float32_ones_do_under_autocast(tiny_llama_dir, tmp_path):
    mixed = run(tiny_llama_dir, tmp_path, "bf16", precision="bf16")
    frozen_bf16 = run(tiny_llama_dir, tmp_path, "frozen", precision="bf16", frozen_dtype="bfloat16")
    trained = [k for k in mixed[1] if k.startswith(("model.layers.3.", "model.layers.5."))]
    assert_same_run(mixed, frozen_bf16, 1e-5, weights=trained)
    weights, base = frozen_bf16[1], load_file(tiny_llama_dir / "model.safetensors")
    # the frozen matrices are the base's, rounded to bf16 once
    assert torch.equal(weights["model.layers.0.mlp.gate_proj.weight"],
                       base["model.layers.0.mlp.gate_proj.weight"].to(torch.bfloat16))
    assert weights["model.layers.0.mlp.gate_proj.weight"].dtype == torch.bfloat16
    assert weights["model.layers.3.mlp.gate_proj.weight"].dtype == torch.float32  # trained: float32 master copy
    assert weights["model.embed_tokens.weight"].dtype == torch.float32


def test_cast_frozen_linears_halves_the_frozen_matrices_and_spares_embeddings(tiny_llama_dir):
    model = load_causal_lm(tiny_llama_dir)
    model.config.tie_word_embeddings = True
    model.lm_head.weight = model.model.embed_tokens.weight  # tied: the lm_head is the embedding
    for name, p in model.named_parameters():
        p.requires_grad = ".layers.3." in name
    cast = cast_frozen_linears(model, torch.bfloat16)
    per_layer = sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.layers.0.")
                    and n.endswith("proj.weight"))
    assert cast == 5 * per_layer  # layers 0-2, 4, 5; not layer 3, not the tied embedding
    assert model.model.embed_tokens.weight.dtype == torch.float32
    assert model.model.layers[3].self_attn.q_proj.weight.dtype == torch.float32


def test_eager_attention_matches_sdpa(tiny_llama_dir, tmp_path):
    sdpa = run(tiny_llama_dir, tmp_path, "sdpa")
    eager = run(tiny_llama_dir, tmp_path, "eager", attn_implementation="eager")
    assert_same_run(sdpa, eager, 1e-4)


def test_fp16_on_a_cpu_is_refused(tiny_llama_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="precision fp16 needs a GPU"):
        run(tiny_llama_dir, tmp_path, "fp16", precision="fp16")


def test_the_settings_are_part_of_the_run_digest(tmp_path):
    from deepen.train.trainer import config_digest

    digests = {config_digest({**CFG, **extra}) for extra in (
        {}, {"micro_batch_size": 2}, {"gradient_checkpointing": True}, {"frozen_dtype": "bfloat16"},
        {"attn_implementation": "eager"}, {"precision": "bf16"})}
    assert len(digests) == 6, json.dumps(sorted(digests))


def test_fsdp_in_one_process_is_refused_rather_than_run_unsharded(tiny_llama_dir, tmp_path):
    # accelerate drops the FSDP settings of a one-process run: it would train a whole replica, unannounced
    with pytest.raises(ValueError, match="strategy fsdp shards over several processes"):
        run(tiny_llama_dir, tmp_path, "fsdp", strategy="fsdp")


def test_a_run_records_how_it_was_split(tiny_llama_dir, tmp_path):
    # what train() returns goes into the CPT stage's info.json
    model = load_causal_lm(tiny_llama_dir)
    work = tmp_path / "split2"
    result = train(model, None, TOKENS, TOKENS[:4096], {**CFG, "freeze": "all", "micro_batch_size": 4}, work,
                   work / "final")
    assert (result["strategy"], result["sharded_parameters"]) == ("ddp", 0)
    assert (result["micro_batch_size"], result["accumulation_steps"]) == (4, 2)


@pytest.mark.parametrize("keep", [False, True])
def test_no_checkpoint_is_written_at_the_last_step_only_to_be_deleted(tiny_llama_dir, tmp_path, monkeypatch, keep):
    """The Trainer saves at the last step under a "steps" strategy; deepen writes the final model itself and deletes
    the checkpoints after, so that save is skipped unless checkpoints are kept."""
    from transformers import Trainer

    saved = []
    original = Trainer._save_checkpoint

    def record(self, *args, **kwargs):
        saved.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_save_checkpoint", record)
    run(tiny_llama_dir, tmp_path, "ckpt", checkpoint_interval=4, keep_checkpoints=keep)
    assert saved == ([4, 6] if keep else [4])
    assert (tmp_path / "ckpt/checkpoints").exists() == keep


def test_tensorboard_gets_the_losses_the_metrics_file_has(tiny_llama_dir, tmp_path):
    """report_to: tensorboard writes event files in the run's folder; read back, the validation losses are the
    metrics file's, step for step, and the run itself is the plain one."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    watched = run(tiny_llama_dir, tmp_path, "watched", report_to="tensorboard")
    plain = run(tiny_llama_dir, tmp_path, "plain")
    assert_same_run(plain, watched, 0)
    events = EventAccumulator(str(tmp_path / "watched" / "tensorboard"))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("eval/loss")}
    metrics, _ = watched
    assert sorted(logged) == [m["step"] for m in metrics]
    for m in metrics:
        assert logged[m["step"]] == pytest.approx(m["val_loss"], rel=1e-6)
    assert "train/loss" in events.Tags()["scalars"]


def test_a_reporter_that_is_not_installed_is_a_config_error():
    import importlib.util

    from deepen.workflow.config_check import training_problems

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    assert training_problems("cpt", {**CFG, "report_to": "wandb"}) == [
        "cpt.report_to: wandb is not installed here (pip install wandb)"]
