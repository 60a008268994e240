"""A non-editable install carries what deepen reads at run time: the config schema."""

import os
import subprocess
import sys

from conftest import REPO

CHECK = """
import json, sys
from pathlib import Path
import yaml
import deepen
from deepen.core import schema
from deepen.workflow.config_check import validate_config
assert Path(deepen.__file__).is_relative_to(Path(sys.argv[1])), deepen.__file__
config = yaml.safe_load(open(sys.argv[2]))
checked = validate_config(config, schema.SCHEMA_PATH, sys.argv[3], load_datasets=False)
print(json.dumps({"package": deepen.__file__, "schema": str(schema.SCHEMA_PATH),
                  "cpt_seq_len": checked["cpt"]["seq_len"], "filled": checked["resources"]["device"]}))
"""


def test_an_installed_deepen_checks_a_config_against_the_schema_it_carries(tmp_path):
    import shutil

    # from a copy of the package's sources: building in the checkout would leave build/ there
    source = tmp_path / "src"
    source.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    shutil.copytree(REPO / "deepen", source / "deepen", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=600)
    assert (target / "deepen" / "schema.yaml").is_file() and not (target / "deepen" / "schema.yaml").is_symlink()
    # run from elsewhere, the installed copy first on the path: the checkout is not importable from there; the
    # files the config names by path from the working directory go with it, as a project folder would hold them
    shutil.copytree(REPO / "config/mergekit", tmp_path / "config/mergekit")
    proc = subprocess.run([sys.executable, "-c", CHECK, str(target), str(REPO / "config/quick.yaml"),
                           str(REPO / "config/tasks")], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["schema"].startswith(str(target)) and out["filled"] == "auto"
