"""The documentation: the configuration reference is the schema's, the README's own-model config is the file the
tests check, and the site builds with no broken link or page."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from deepen.workflow.schema_docs import reference
from deepen.core.schema import schema


def test_the_configuration_reference_is_written_from_the_schema():
    page = (REPO / "docs/configuration.md").read_text()
    assert page == reference(schema()), ("docs/configuration.md is stale: "
                                         "python -m deepen.workflow.schema_docs > docs/configuration.md")
    # every option of every section is there, with its default
    assert "| `cpt.micro_batch_size` |" in page and "| `resources.device` |" in page
    assert "| `methods.<name>.zero_init` | boolean | `false` |" in page


def test_the_command_and_api_reference_is_written_from_the_code():
    from deepen.workflow.api_docs import reference as api_reference

    page = (REPO / "docs/api.md").read_text()
    assert page == api_reference(), "docs/api.md is stale: python -m deepen.workflow.api_docs > docs/api.md"
    for name in ("expand", "check", "costs", "run", "export"):
        assert f"### deepen {name}" in page
    for name in ("plan", "expand", "check", "costs"):
        assert f"### deepen.{name}" in page


def test_the_readmes_own_model_config_is_config_own_model_yaml():
    block = re.search(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    assert yaml.safe_load(block) == yaml.safe_load((REPO / "config/own_model.yaml").read_text())


def test_the_readme_is_short_and_its_links_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for target in re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)", text):
        assert (REPO / target).exists(), target


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.fail("mkdocs is a test requirement (pip install -e '.[test]')")
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site/configuration/index.html").exists()
