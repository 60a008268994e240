"""The wheel carries the workflow: Snakefile, rules, scripts, configs (schema, task templates, examples), report
captions, conda environment and profiles are copied into the package as deepen/_workflow, where ``deepen run`` finds
them when deepen is installed from a wheel rather than run from a checkout. Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "report", "envs", "profiles")


class BuildWithWorkflow(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "deepen" / "_workflow"
        for part in WORKFLOW_PARTS:
            source = root / part
            if source.is_dir():
                # symlinks (config/schema.yaml) become the files they point at
                shutil.copytree(source, target / part, symlinks=False, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / part)


setup(cmdclass={"build_py": BuildWithWorkflow})
