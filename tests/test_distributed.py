"""CPT with two processes (torchrun over gloo on CPU) follows the one-process loss curve at the same global batch,
under DDP and under FSDP (parameters, gradients and optimizer state sharded); an FSDP run killed after a checkpoint
resumes from it and ends where the uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from deepen.train.cpt import cpt_stage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPT = {"steps": 20, "batch_size": 8, "seq_len": 32, "lr": 1e-3, "warmup_steps": 2, "weight_decay": 0.0,
       "grad_clip": 1.0, "schedule": "cosine", "eval_interval": 5, "eval_tokens": 2048, "checkpoint_interval": 10,
       "keep_checkpoints": False, "plateau": None, "seed": 0, "freeze": "all"}
# Two processes each average 4 sequences and DDP averages the two means: the same gradient as one mean
# of 8, summed in another order. Measured: the curves agree to ~1e-6 over 20 steps, under DDP and FSDP.
# Processes that step on their own unsynchronised gradients (or a wrong batch split) move the loss by ~5e-3
# within 5 steps.
TOLERANCE = 1e-4


def stage_args(quick_run, work, cfg):
    return ["llama_pro", quick_run / "results/models/llama_pro", quick_run / "results/tokens/train.bin",
            quick_run / "results/tokens/val.bin", cfg, work, work / "final", work / "info.json"]


def run(quick_run, work, cfg):
    cpt_stage(*stage_args(quick_run, work, cfg), threads=2)
    return [json.loads(l) for l in (work / "metrics.jsonl").read_text().splitlines()]


def assert_same_curve(one, two):
    assert [m["step"] for m in one] == [m["step"] for m in two] == [0, 5, 10, 15, 20]
    for a, b in zip(one, two):
        assert abs(a["val_loss"] - b["val_loss"]) <= TOLERANCE, (a, b)
        if a["train_loss"] is not None:
            assert abs(a["train_loss"] - b["train_loss"]) <= TOLERANCE, (a, b)
    assert one[-1]["val_loss"] < one[0]["val_loss"] - 0.005  # it trained


def test_two_processes_follow_the_one_process_curve(quick_run, tmp_path):
    one, two = run(quick_run, tmp_path / "one", {**CPT, "nproc": 1}), run(quick_run, tmp_path / "two", {**CPT, "nproc": 2})
    assert json.loads((tmp_path / "two/info.json").read_text())["processes"] == 2
    assert_same_curve(one, two)
    assert (tmp_path / "two/final/model.safetensors").exists()


FSDP = {**CPT, "freeze": "new_only", "strategy": "fsdp", "nproc": 2}


@pytest.fixture(scope="module")
def fsdp_whole(quick_run, tmp_path_factory):
    work = tmp_path_factory.mktemp("fsdp") / "whole"
    return work, run(quick_run, work, FSDP)


def test_fsdp_shards_and_follows_the_one_process_curve(quick_run, fsdp_whole, tmp_path):
    work, two = fsdp_whole
    one = run(quick_run, tmp_path / "one", {**CPT, "freeze": "new_only", "nproc": 1})
    info = json.loads((work / "info.json").read_text())
    assert info["strategy"] == "fsdp" and info["processes"] == 2
    assert info["sharded_parameters"] > 0  # each process held shards (DTensors), not a replica
    assert info["trainable_params"] < info["params"]  # new_only under FSDP: the base layers stayed frozen
    assert_same_curve(one, two)
    # saved whole, as the one-process run saves it: the same names, shapes, and the frozen layers untouched
    a, b = load_file(tmp_path / "one/final/model.safetensors"), load_file(work / "final/model.safetensors")
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    base = load_file(next((quick_run / "results/models/llama_pro").glob("model*.safetensors")))  # one shard
    frozen = [k for k in base if ".layers.0." in k]  # layer 0 is a base layer (added layers: 2 and 5)
    assert frozen and all(torch.equal(base[k], b[k]) for k in frozen)


def test_fsdp_run_killed_after_a_checkpoint_resumes_and_ends_as_the_whole_run(quick_run, fsdp_whole, tmp_path):
    whole, cut = fsdp_whole[0], tmp_path / "cut"
    code = (f"import sys; sys.path.insert(0, {REPO!r}); from deepen.train.cpt import cpt_stage; "
            f"cpt_stage(*{[str(a) if not isinstance(a, dict) else a for a in stage_args(quick_run, cut, FSDP)]!r}, "
            f"threads=2)")
    # its own process group: the kill takes torchrun and both training processes, as a lost node would
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    checkpoint = cut / "checkpoints/checkpoint-10"
    deadline = time.time() + 300
    while not all((checkpoint / f).exists() for f in ("trainer_state.json", "rng_state_0.pth", "rng_state_1.pth")) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (checkpoint / "trainer_state.json").exists(), "the run ended before its step-10 checkpoint"
    assert not (cut / "metrics.jsonl").exists() and not (cut / "final").exists()

    resumed = run(quick_run, cut, FSDP)
    assert json.loads((cut / "info.json").read_text())["resumed_from_step"] >= 10
    strip = lambda metrics: [{k: v for k, v in m.items() if k != "seconds"} for m in metrics]  # noqa: E731
    assert strip(resumed) == strip(fsdp_whole[1])
    a, b = load_file(whole / "final/model.safetensors"), load_file(cut / "final/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
