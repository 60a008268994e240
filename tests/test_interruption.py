"""A run killed with SIGKILL (a node lost, a job over its time limit) leaves nothing half-written at an
output path, and the rerun completes, resuming training from its last checkpoint."""

import json
import os
import shutil
import signal
import subprocess
import time

from conftest import SNAKEMAKE, copy_run, snakemake


def test_killed_workflow_leaves_no_output_and_reruns_from_the_checkpoint(quick_run, tmp_path):
    # a complete run's copy (results and Snakemake's records) without its base: base pretraining alone runs
    workdir = copy_run(quick_run, tmp_path / "run")
    for output in ("results/base", "results/base_training"):
        shutil.rmtree(workdir / output)
    args = ["results/base", "--cores", "2", "--configfile", "config/quick.yaml"]  # target first: --configfile takes a list
    proc = subprocess.Popen([SNAKEMAKE, *args], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    checkpoint = workdir / "results/base_training/checkpoints/checkpoint-10/trainer_state.json"
    deadline = time.time() + 600
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the training job with it
    proc.wait()
    assert checkpoint.exists(), "base pretraining ended before its first checkpoint"
    for output in ("results/base", "results/base_training/metrics.jsonl", "results/base_training/info.json"):
        assert not (workdir / output).exists(), output

    snakemake(workdir, "--unlock", "--configfile", "config/quick.yaml")  # the killed Snakemake kept its lock
    snakemake(workdir, *args, "--rerun-incomplete")
    info = json.loads((workdir / "results/base_training/info.json").read_text())
    assert info["resumed_from_step"] >= 10
    assert (workdir / "results/base/model.safetensors").exists()
    steps = [json.loads(l)["step"] for l in (workdir / "results/base_training/metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[0] == 0, steps  # one line per evaluation, none repeated
