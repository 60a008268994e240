"""The built wheel, installed non-editable in a fresh venv with no checkout on the path, carries the workflow:
``deepen run`` makes a model of config/quick.yaml in an empty folder from the files the wheel carries, and ``deepen
expand`` makes a LLaMA Pro SmolLM2 whose logits equal the base's. The sdist carries what the wheel is built from."""

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, require_smollm2

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "deepen", "Snakefile", "rules", "scripts",
           "config", "report", "envs", "profiles")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, the wheel): the wheel built from a copy of the sources and installed alone in a fresh venv; its
    dependencies come from the test environment's site-packages, added as a plain path (no .pth of it runs, so the
    editable checkout is not importable)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for part in SOURCES:
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy2)(REPO / part, src / part)
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "-o", str(root / "dist"), str(src)], check=True,
                   capture_output=True, timeout=600)
    wheel = next((root / "dist").glob("*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([venv / "bin/python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    site = Path(subprocess.run([venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv, wheel, root


def test_the_wheel_and_sdist_carry_the_workflow(installed):
    _, wheel, root = installed
    names = zipfile.ZipFile(wheel).namelist()
    for part in ("Snakefile", "rules/expand.smk", "scripts/reconstruct.py", "config/schema.yaml", "config/quick.yaml",
                 "config/tasks/deepen_ppl.yaml", "config/mergekit/quick_appended.yaml", "report/workflow.rst",
                 "envs/deepen.yaml"):
        assert f"deepen/_workflow/{part}" in names, part
    assert "deepen-0.1.0.dist-info/entry_points.txt" in names
    sdist = next((root / "dist").glob("*.tar.gz"))
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("/rules/expand.smk") for m in members) and any(m.endswith("/setup.py") for m in members)


def test_the_installed_command_runs_the_workflow_in_an_empty_folder(installed, tmp_path):
    venv, _, _ = installed
    work = tmp_path / "project"
    work.mkdir()
    where = subprocess.run([venv / "bin/python", "-c", "import deepen, sys; print(deepen.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), where
    workflow = Path(where).parent / "_workflow"
    # the corpus, the tokenizer trained on it and the tokenized split: three jobs of the packaged rules and scripts
    proc = subprocess.run([venv / "bin/deepen", "run", workflow / "config/quick.yaml", "--cores", "2", "--",
                           "results/tokens/val.bin"], cwd=work, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (work / "results/tokens/val.json").exists() and (work / "results/tokenizer/tokenizer.json").exists()
    assert f"--snakefile {workflow / 'Snakefile'}" in proc.stderr


def test_the_installed_command_expands_smollm2_preserving_its_function(installed, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from deepen.models.gguf_import import gguf_source

    venv, _, _ = installed
    source = gguf_source(require_smollm2())
    proc = subprocess.run([venv / "bin/deepen", "expand", source, "--method", "llama_pro", "-o", tmp_path / "out",
                           "--work-dir", tmp_path / "work"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "work/results/base")
    deeper = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert deeper.config.num_hidden_layers == 45
    ids = torch.tensor([[1, 504, 3458, 314, 260, 2261, 30]])
    with torch.no_grad():
        assert torch.equal(base(ids).logits, deeper(ids).logits)
