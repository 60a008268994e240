"""A training run's metrics file (one json line per evaluation), read without torch: the report reads it too."""

from __future__ import annotations

import json
import math
from pathlib import Path


def read_metrics(path) -> list[dict]:
    """The json lines of a metrics file; a last line cut short by an interruption is dropped."""
    lines = [l for l in Path(path).read_text().splitlines() if l.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}: line {i + 1} is not json") from None
    return out


def steps_to_reach(metrics: list[dict], target: float) -> int | None:
    """First logged step whose val loss is at or below ``target``."""
    for m in metrics:
        if m["val_loss"] is not None and not math.isnan(m["val_loss"]) and m["val_loss"] <= target:
            return m["step"]
    return None
