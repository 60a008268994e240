"""config/quick.yaml (without the growth and SFT branches) through profiles/slurm on a one-node SLURM cluster
(tests/slurm_cluster.py): every job the workflow submits runs on the cluster, and the results equal a local
run's."""

import re

import pytest

from test_determinism import model_hashes, summary_numbers


def test_quick_config_through_the_slurm_profile_equals_a_local_run(quick_rerun, quick_run):
    if quick_rerun.cluster is None:
        pytest.skip(quick_rerun.why_local)
    log = quick_rerun.proc.stdout + quick_rerun.proc.stderr
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    completed = set(re.findall(r"JobId=(\d+) .*?JobState=COMPLETED", (quick_rerun.cluster / "jobcomp.log").read_text()))
    jobs = int(re.search(r"^total\s+(\d+)", log, re.M).group(1))
    local = re.findall(r"^localrule (\w+):", log, re.M)
    assert set(local) <= {"all", "report", "base_training_curve", "task_data"}, local
    assert len(submitted) == jobs - len(local) >= 40, (len(submitted), jobs, local)
    assert submitted <= completed  # each ran on the cluster and finished there

    assert model_hashes(quick_rerun.workdir) == model_hashes(quick_run)
    assert summary_numbers(quick_rerun.workdir) == summary_numbers(quick_run)
