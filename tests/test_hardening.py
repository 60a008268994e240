"""Bad input files, numerical guards, disk space, interruption and resume: each stops or recovers with
nothing lost and nothing half-written left at an output path."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import REPO
from deepen.expand import reconstruct as reconstruct_module
from deepen.core.disk import LIMIT_ENV, DiskSpaceError
from deepen.models.model_dir import InputError
from deepen.expand.execute import generate_stage
from deepen.expand.reconstruct import reconstruct_stage
from deepen.expand.weights import extract_stage
from deepen.expand.reconstruct import ReconstructionError
from deepen.models.tensorio import INDEX_NAME


def model_copy(tiny_llama_dir, tmp_path):
    dest = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, dest)
    return dest


def sharded_copy(tiny_llama_dir, tmp_path):
    """The tiny Llama split into one shard per tensor group, with an index."""
    dest = tmp_path / "sharded"
    dest.mkdir()
    shutil.copy2(tiny_llama_dir / "config.json", dest / "config.json")
    tensors = load_file(tiny_llama_dir / "model.safetensors")
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, part in halves.items():
        save_file({n: tensors[n].contiguous() for n in part}, dest / shard, metadata={"format": "pt"})
        weight_map.update({n: shard for n in part})
    (dest / INDEX_NAME).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return dest


def fails_naming(stage, exc, *needles):
    with pytest.raises(exc) as err:
        stage()
    for needle in needles:
        assert str(needle) in str(err.value), str(err.value)


def test_missing_shard_is_named_and_nothing_is_extracted(tiny_llama_dir, tmp_path):
    model = sharded_copy(tiny_llama_dir, tmp_path)
    out = tmp_path / "weights" / "q_proj.safetensors"
    extract_stage(model, "q_proj", out)  # the intact sharded copy extracts
    out.unlink()
    (model / "model-00002-of-00002.safetensors").unlink()
    fails_naming(lambda: extract_stage(model, "q_proj", out), FileNotFoundError,
                 model / "model-00002-of-00002.safetensors")
    assert not out.exists()


def test_truncated_safetensors_is_named(tiny_llama_dir, tmp_path):
    model = model_copy(tiny_llama_dir, tmp_path)
    weights = model / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    out = tmp_path / "weights" / "q_proj.safetensors"
    fails_naming(lambda: extract_stage(model, "q_proj", out), OSError, weights, "truncated")
    assert not out.exists()


def test_layer_count_disagreeing_with_the_weights_is_named(tiny_llama_dir, tmp_path):
    model = model_copy(tiny_llama_dir, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["num_hidden_layers"] = 8
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "weights" / "q_proj.safetensors"
    fails_naming(lambda: extract_stage(model, "q_proj", out), InputError,
                 model / "config.json", "num_hidden_layers is 8", "layers 0..5")
    assert not out.exists()


def test_tokenizer_with_ids_beyond_the_embedding_is_named(tiny_llama_dir, tmp_path):
    model = model_copy(tiny_llama_dir, tmp_path)  # embedding: 128 rows
    vocab = {f"t{i}": i for i in range(120)}
    (model / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab},
                                                      "added_tokens": [{"id": 150, "content": "<x>"}]}))
    out = tmp_path / "weights" / "q_proj.safetensors"
    fails_naming(lambda: extract_stage(model, "q_proj", out), InputError,
                 model / "tokenizer.json", "151 token ids", "128 rows")
    assert not out.exists()


def test_nan_in_a_generated_layer_stops_generation_naming_layer_and_matrix(tiny_llama_dir, weights_dir, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(weights_dir, weights)
    stack = load_file(weights / "up_proj.safetensors")["weights"].clone()
    stack[4, 0, 0] = float("nan")
    save_file({"weights": stack}, weights / "up_proj.safetensors")
    out = tmp_path / "layers" / "avg"
    # top_half on 6 layers puts new layers between 2|3, 3|4 and 4|5: the first to meet layer 4 is new layer 1
    fails_naming(lambda: generate_stage("avg", {"generator": "average", "placement": "top_half"}, tiny_llama_dir,
                                        weights, out), FloatingPointError,
                 "new layer 1 (between base layers 3 and 4) up_proj has NaN")
    assert not (out / "new_layers.safetensors").exists() and not (out / "plan.json").exists()


def test_reconstruction_that_misplaces_a_base_layer_is_stopped(tiny_llama_dir, weights_dir, tmp_path, monkeypatch):
    layers = tmp_path / "layers"
    generate_stage("llama_pro", {"generator": "copy", "placement": "top_half", "zero_init": True}, tiny_llama_dir,
                   weights_dir, layers)
    real = reconstruct_module.output_tensors

    def swapped(reader, plan, arch):  # a mapping bug: output layer 1 is read from base layer 2
        return [(name, (kind, src.replace("layers.1.", "layers.2.") if ".layers.1." in name else src))
                for name, (kind, src) in real(reader, plan, arch)]

    monkeypatch.setattr(reconstruct_module, "output_tensors", swapped)
    out = tmp_path / "model"
    fails_naming(lambda: reconstruct_stage("llama_pro", tiny_llama_dir, tiny_llama_dir, layers / "plan.json",
                                           layers / "new_layers.safetensors", out, max_shard_mb=1),
                 ReconstructionError, "output layer 1", "base layer 1")
    assert not out.exists() and not list(tmp_path.glob(".model.tmp*"))


def test_reconstruction_checks_free_space_first(tiny_llama_dir, weights_dir, tmp_path, monkeypatch):
    layers = tmp_path / "layers"
    generate_stage("llama_pro", {"generator": "copy", "placement": "top_half", "zero_init": True}, tiny_llama_dir,
                   weights_dir, layers)
    monkeypatch.setenv(LIMIT_ENV, str(10 * 1024**2))  # the model is ~0.1 MiB, the margin 64 MiB
    out = tmp_path / "model"
    fails_naming(lambda: reconstruct_stage("llama_pro", tiny_llama_dir, tiny_llama_dir, layers / "plan.json",
                                           layers / "new_layers.safetensors", out, max_shard_mb=1),
                 DiskSpaceError, "reconstruct llama_pro", "only 10.0 MiB is free")
    assert not out.exists()


CPT = {"steps": 40, "batch_size": 8, "seq_len": 32, "lr": 1e-3, "warmup_steps": 2, "weight_decay": 0.0,
       "grad_clip": 1.0, "schedule": "cosine", "eval_interval": 5, "eval_tokens": 2048, "checkpoint_interval": 10,
       "keep_checkpoints": False, "plateau": None, "seed": 0, "freeze": "new_only"}


def cpt_command(quick_run, work):
    """A CPT stage of the quick run's LLaMA Pro model as its own process, as Snakemake runs it."""
    args = [str(quick_run / "results/models/llama_pro"), str(quick_run / "results/tokens/train.bin"),
            str(quick_run / "results/tokens/val.bin"), CPT, str(work), str(work / "final"), str(work / "info.json")]
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from deepen.train.cpt import cpt_stage; "
            f"cpt_stage('llama_pro', *{args!r}, threads=1)")
    return [sys.executable, "-c", code]


def test_cpt_killed_after_a_checkpoint_resumes_from_it_and_ends_bit_identical(quick_run, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(cpt_command(quick_run, whole), check=True, capture_output=True)
    assert json.loads((whole / "info.json").read_text())["resumed_from_step"] == 0

    proc = subprocess.Popen(cpt_command(quick_run, cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = cut / "checkpoints/checkpoint-20/trainer_state.json"
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the run ended before its step-20 checkpoint"
    # Nothing at the stage's output paths: the metrics stay partial, the final model a temporary.
    assert not (cut / "metrics.jsonl").exists() and not (cut / "final").exists() and not (cut / "info.json").exists()

    subprocess.run(cpt_command(quick_run, cut), check=True, capture_output=True)
    info = json.loads((cut / "info.json").read_text())
    assert info["resumed_from_step"] >= 20
    assert not list(cut.glob(".final.tmp*")), "the killed run's temporary was not cleared"
    a, b = load_file(whole / "final/model.safetensors"), load_file(cut / "final/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda path: [{k: v for k, v in json.loads(l).items() if k != "seconds"}  # noqa: E731
                          for l in path.read_text().splitlines()]
    assert strip(whole / "metrics.jsonl") == strip(cut / "metrics.jsonl")


def test_cpt_checks_free_space_before_a_checkpoint(quick_run, tmp_path, monkeypatch):
    from deepen.train.cpt import cpt_stage

    monkeypatch.setenv(LIMIT_ENV, str(8 * 1024**2))
    work = tmp_path / "cpt"
    fails_naming(lambda: cpt_stage("llama_pro", quick_run / "results/models/llama_pro",
                                   quick_run / "results/tokens/train.bin", quick_run / "results/tokens/val.bin",
                                   dict(CPT), work, work / "final", work / "info.json"),
                 DiskSpaceError, "checkpoint at step 10", "only 8.0 MiB is free")
    assert not (work / "final").exists() and not (work / "checkpoints/checkpoint-10").exists()
