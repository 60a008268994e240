"""Writing an output so that it appears whole or not at all: into a temporary sibling, renamed onto the path only
when the writing succeeded; temporaries a killed process left are cleared. No torch here: jobs that write small
files import this alone."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


def _clear_stale(path: Path) -> None:
    """Remove temporaries of ``path`` left by a process that was killed (its pid no longer runs)."""
    for old in path.parent.glob(f".{path.name}.tmp*"):
        pid = old.name.rpartition(".tmp")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
        except PermissionError:
            pass  # a live process of another user


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield an empty temporary sibling directory; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    if path.parent.exists():
        _clear_stale(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(obj, path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2))
