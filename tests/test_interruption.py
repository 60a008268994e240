"""A run killed with SIGKILL (a node lost, a job over its time limit) leaves nothing half-written at an
output path, and the rerun completes, resuming training from its last checkpoint."""

import json
import shutil

from conftest import copy_run, kill_when, snakemake


def test_killed_workflow_leaves_no_output_and_reruns_from_the_checkpoint(quick_run, tmp_path):
    # a complete run's copy (results and Snakemake's records) without its base: base pretraining alone runs
    workdir = copy_run(quick_run, tmp_path / "run")
    for output in ("results/base", "results/base_training"):
        shutil.rmtree(workdir / output)
    args = ["results/base", "--cores", "2", "--configfile", "config/quick.yaml"]  # target first: --configfile takes a list
    checkpoint = workdir / "results/base_training/checkpoints/checkpoint-10/trainer_state.json"
    kill_when(workdir, args, checkpoint)  # Snakemake and the training job with it
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
