"""The ``deepen`` command, through its console script in a subprocess: each subcommand, the same tensors as the
workflow's models for the same settings, and bad input as one line with exit status 2, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from test_config import LLAMA_3_1_8B

DEEPEN = str(Path(sys.executable).with_name("deepen"))


def deepen(*args, cwd=None, timeout=600):
    return subprocess.run([DEEPEN, *map(str, args)], capture_output=True, text=True, cwd=cwd or REPO, timeout=timeout)


def same_tensors(a: Path, b: Path) -> list[str]:
    """The tensors whose values differ between two model folders (names and shapes must agree)."""
    from deepen.models.tensorio import CheckpointReader

    ra, rb = CheckpointReader(a), CheckpointReader(b)
    assert sorted(ra.keys()) == sorted(rb.keys())
    return [k for k in ra.keys() if not torch.equal(ra.get(k), rb.get(k))]


@pytest.mark.parametrize("command", ["", "expand", "check", "costs", "run", "export"])
def test_every_subcommand_says_what_it_does(command):
    proc = deepen(*([command] if command else []), "--help")
    assert proc.returncode == 0 and "usage: deepen" in proc.stdout
    if not command:
        for sub in ("expand", "check", "costs", "run", "export"):
            assert sub in proc.stdout


@pytest.mark.parametrize("method, args", [("llama_pro", ["--method", "llama_pro"]), ("solar", ["--method", "solar"]),
                                          ("opt_deus", ["--method", "opt_deus"]),
                                          ("appended", ["--mergekit-config", "config/mergekit/quick_appended.yaml"])])
def test_expand_makes_the_workflows_model(quick_run, tmp_path, method, args):
    """config/quick.yaml's rows take the default comparison's settings for these methods: deepen expand on the quick
    run's base makes them tensor for tensor."""
    out = tmp_path / method
    proc = deepen("expand", quick_run / "results/base", *args, "-o", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not same_tensors(out, quick_run / "results/models" / method)
    assert json.loads((out / "deepen_plan.json").read_text())["plan"] == \
        json.loads((quick_run / f"results/models/{method}/deepen_plan.json").read_text())["plan"]
    assert (out / "README.md").read_text().startswith("---\n")


def test_plan_only_prints_the_plan_and_writes_nothing(quick_run, tmp_path):
    proc = deepen("expand", quick_run / "results/base", "-m", "copy", "-O", "placement={interval: 2}", "--plan-only",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "copy: 4 base layers -> 6 layers"
    assert "new #0 between base layers 1 and 2" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_one_line_and_status_2(quick_run, tmp_path):
    base = quick_run / "results/base"
    (tmp_path / "taken").mkdir()
    cases = {
        ("expand", base, "-m", "nonesuch", "-o", tmp_path / "x"): "unknown method 'nonesuch'",
        ("expand", base, "-m", "copy", "-O", "placment=top_half", "-o", tmp_path / "x"): "placment",
        ("expand", base, "-o", tmp_path / "taken"): "exists (--force replaces it)",
        ("expand", tmp_path / "no_model", "-o", tmp_path / "x"): "does not exist",
        ("check", tmp_path / "missing.yaml"): "no such config file",
        ("export", tmp_path, "-o", tmp_path / "m.gguf"): "not a model folder",
    }
    for args, message in cases.items():
        proc = deepen(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "x").exists()


def test_check_says_valid_or_names_the_key(tmp_path):
    proc = deepen("check", "config/quick.yaml", "--no-datasets")
    assert proc.returncode == 0 and "valid" in proc.stdout, proc.stderr
    (tmp_path / "bad.yaml").write_text("cpt: {steps: -1}\n")
    proc = deepen("check", "config/quick.yaml", tmp_path / "bad.yaml", "--no-datasets")
    assert proc.returncode == 2 and "cpt.steps" in proc.stderr and "Traceback" not in proc.stderr


def test_costs_of_the_8b_config_on_eight_80_gb_gpus(tmp_path):
    """The 8B config's table on 8 GPUs of 80 GB; its peaks are docs/stage_costs.md's (one process, float32); with
    4 GB GPUs the stages that do not fit are named and the status is 1."""
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_3_1_8B))
    proc = deepen("costs", "config/llama8b_slurm.yaml", "--gpus", "8", "--gpu-memory", "80", "--base-config",
                  tmp_path / "config.json")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line[:1].isalpha()}
    for stage, peak in (("svd", "7.5"), ("generate_layers", "17.5"), ("init_loss", "62.4"), ("evaluate", "54.3")):
        assert rows[stage][-2] == peak, rows[stage]
    assert "WILL NOT FIT" not in proc.stdout
    small = deepen("costs", "config/llama8b_slurm.yaml", "--gpus", "8", "--gpu-memory", "4", "--base-config",
                   tmp_path / "config.json")
    assert small.returncode == 1
    assert "will not fit — init_loss: needs 62.4 GB of GPU memory per process, 4 GB given" in small.stdout


def test_export_writes_the_gguf_and_the_modelfile(quick_run, tmp_path):
    proc = deepen("export", quick_run / "results/models/solar", "-o", tmp_path / "solar.gguf", "--type", "q8_0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["type"] == "q8_0"
    assert "FROM ./solar.gguf" in (tmp_path / "solar.Modelfile").read_text()


def test_run_plans_the_workflow_from_an_empty_folder(tmp_path):
    """The workflow the package carries, its results in the folder it is run from; the example config's mergekit
    file is found in the workflow's folder."""
    proc = deepen("run", REPO / "config/quick.yaml", "--", "-n", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "export_model" in proc.stdout and not (tmp_path / "results").exists()


def test_the_python_api_makes_what_the_command_makes(quick_run, tmp_path):
    import deepen

    base = quick_run / "results/base"
    plan = deepen.plan(base, "llama_pro")
    out = deepen.expand(base, tmp_path / "llama_pro", "llama_pro")
    assert json.loads((out / "deepen_plan.json").read_text())["plan"] == plan
    assert not same_tensors(out, quick_run / "results/models/llama_pro")
    assert deepen.check(REPO / "config/quick.yaml")["cpt"]["steps"] == 10
    table, fits = deepen.costs(REPO / "config/quick.yaml", gpu_memory_gb=80)
    assert fits and "continual_pretrain" in table
