"""Send a stage's stdout, stderr (tqdm included) and logging to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path


@contextlib.contextmanager
def to_log(path: str | None):
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=f)
            raise
        finally:
            root.removeHandler(handler)
