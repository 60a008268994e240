"""Free-space checks before the large writes (reconstruction, training checkpoints), so a full disk
stops a stage with a message before it has written half a model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Room left over for logs, headers and the file system's own bookkeeping.
MARGIN_BYTES = 64 * 1024**2
# Tests (and users who share a disk) may cap what deepen considers free, in bytes.
LIMIT_ENV = "DEEPEN_FREE_BYTES_LIMIT"


class DiskSpaceError(OSError):
    pass


def free_bytes(directory) -> int:
    path = Path(directory).resolve()
    while not path.exists():  # the output directory may not exist yet; its file system does
        path = path.parent
    free = shutil.disk_usage(path).free
    limit = os.environ.get(LIMIT_ENV)
    return min(free, int(limit)) if limit else free


def human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def ensure_free(directory, nbytes: int, what: str) -> None:
    """Raise DiskSpaceError when ``directory``'s file system has less than ``nbytes`` (plus a margin) free."""
    free = free_bytes(directory)
    if nbytes + MARGIN_BYTES > free:
        raise DiskSpaceError(f"{what}: needs {human(nbytes)} (+{human(MARGIN_BYTES)} margin) in {directory}, "
                             f"but only {human(free)} is free")
