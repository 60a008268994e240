"""The quick run's second, seeded part (tests/conftest.py: quick_rerun) through profiles/slurm on a one-node SLURM
cluster (tests/slurm_cluster.py): every job the workflow submits runs on the cluster (its results equal the local
run's: tests/test_determinism.py)."""

import json
import os
import re

import pytest
import yaml

import slurm_cluster
from conftest import copy_run, snakemake


@pytest.mark.xdist_group("slurm_cluster")  # one test cluster at a time
def test_quick_config_runs_every_job_through_the_slurm_profile(quick_rerun):
    if quick_rerun.cluster is None:
        pytest.skip(quick_rerun.why_local)
    log = quick_rerun.proc.stdout + quick_rerun.proc.stderr
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    completed = set(re.findall(r"JobId=(\d+) .*?JobState=COMPLETED", (quick_rerun.cluster / "jobcomp.log").read_text()))
    jobs = int(re.search(r"^total\s+(\d+)", log, re.M).group(1))
    local = re.findall(r"^localrule (\w+):", log, re.M)
    assert set(local) <= {"all", "report", "base_training_curve", "task_data"}, local
    assert len(submitted) == jobs - len(local) >= 30, (len(submitted), jobs, local)
    assert submitted <= completed  # each ran on the cluster and finished there
    # that its results equal the local run's: tests/test_determinism.py


@pytest.mark.xdist_group("slurm_cluster")
def test_a_cpt_job_over_two_slurm_tasks_follows_the_local_curve(quick_run, tmp_path):
    """cpt.nodes: 2 through the profile: the job gets two SLURM tasks, srun starts a torchrun in each, and they
    meet in a c10d rendezvous, as on two nodes. The one-node test cluster holds both tasks; the curve must be
    the local one-process run's, at the same global batch."""
    reason = slurm_cluster.unavailable()
    if reason is not None:
        if os.environ.get("DEEPEN_REQUIRE_SLURM") == "1":
            pytest.fail(f"DEEPEN_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    work = tmp_path / "run"
    copy_run(quick_run, work)  # its results and .snakemake records: only the CPT job reruns
    cfg = yaml.safe_load((work / "config/quick.yaml").read_text())
    cfg["cpt"]["nodes"] = 2
    (work / "config/two_nodes.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = "results/cpt/llama_pro/new_only/seed0"
    (tmp_path / "slurm").mkdir()
    with slurm_cluster.cluster(tmp_path / "slurm") as cluster_dir:
        proc = snakemake(work, f"{target}/metrics.jsonl", "--profile", "profiles/slurm", "--configfile",
                         "config/two_nodes.yaml", "--set-resources", "continual_pretrain:nodes=1", "--jobs", "2",
                         "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                         timeout=900)
        jobcomp = (cluster_dir / "jobcomp.log").read_text()
    log = proc.stdout + proc.stderr
    assert re.findall(r"^rule (\w+):", log, re.M) == ["continual_pretrain"], log[-3000:]
    assert re.search(r"JobState=COMPLETED .*NodeCnt=1 ProcCnt=2 ", jobcomp), jobcomp  # one job of two tasks
    info = json.loads((work / target / "info.json").read_text())
    assert (info["processes"], info["nodes"]) == (2, 2)  # nproc 1: one process per task, joined by rendezvous
    local = [json.loads(l) for l in (quick_run / target / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(l) for l in (work / target / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in local] == [m["step"] for m in two]
    for a, b in zip(local, two):
        assert abs(a["val_loss"] - b["val_loss"]) <= 1e-4, (a, b)
