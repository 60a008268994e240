"""A GGUF file in parts small enough for one transfer to a GPU machine each, and joined again there."""

from __future__ import annotations

from pathlib import Path


def split_file(source: Path, out: Path, part_bytes: int) -> int:
    """``out/base.gguf.part{k}``, replacing older parts; return how many."""
    for old in out.glob("base.gguf.part*"):
        old.unlink()
    data = source.read_bytes()
    starts = range(0, len(data), part_bytes)
    for k, start in enumerate(starts):
        (out / f"base.gguf.part{k}").write_bytes(data[start : start + part_bytes])
    return len(starts)


def join_parts(folders: list[Path], dest: Path, size: int) -> Path:
    """The parts found in ``folders`` (the first folder holding a part wins) written to ``dest`` in order."""
    parts = {}
    for folder in folders:
        for p in Path(folder).glob("base.gguf.part*"):
            parts.setdefault(int(p.name.rsplit("part", 1)[1]), p)
    if not parts or sorted(parts) != list(range(len(parts))):
        raise SystemExit(f"GGUF parts found: {sorted(parts)}; need 0..n without gaps (--parts names more folders)")
    with open(dest, "wb") as f:
        for k in sorted(parts):
            f.write(parts[k].read_bytes())
    if dest.stat().st_size != size:
        raise SystemExit(f"joined GGUF has {dest.stat().st_size} bytes, expected {size}")
    return dest
