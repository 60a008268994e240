"""The quick run's seeded part again (tests/conftest.py: quick_rerun), with the same seed, through profiles/slurm on a
one-node SLURM cluster (tests/slurm_cluster.py) where one can be started: every job the workflow submits runs on
the cluster, and the results equal the first, local run's. The tests that start a cluster live in this file:
pytest-xdist hands a file to one worker (--dist loadfile), and one cluster runs at a time."""

import json
import os
import re

import pytest
import yaml

import slurm_cluster
from conftest import SEEDED_METHODS, copy_run, snakemake
from test_determinism import method_of, model_hashes, summary_numbers


def test_same_seed_gives_identical_results(quick_rerun, quick_run):
    # through SLURM where a cluster can be started here, and from a working directory outside the workflow
    # (conftest): neither may change a result
    again = quick_rerun.workdir
    assert not (again / "Snakefile").exists() and not (again / "config").exists()
    first, second = model_hashes(quick_run), model_hashes(again)
    assert {method_of(k) for k in second} == {"base", *SEEDED_METHODS}
    assert len(second) >= 9 and second.items() <= first.items()  # the base, 3 expanded models, 5 CPT runs
    ran = {"base", *SEEDED_METHODS}
    assert summary_numbers(again) == [row for row in summary_numbers(quick_run) if row["method"] in ran]


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
    cfg["race"]["enabled"] = False  # the race's rungs train in one process; the config check refuses two nodes
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
