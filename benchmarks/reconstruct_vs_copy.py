"""Reconstruction against copying the same bytes with `cp`, in one run.

Builds a random bfloat16 Llama (default ~330 M parameters, ~0.7 GB), expands it with LLaMA Pro's plan
(8 -> 12 layers), and times reconstruction against `cp` of the base files plus the generated layers —
the same bytes the reconstruction writes. Target: ratio <= 1.5.

    python benchmarks/reconstruct_vs_copy.py [--hidden 1024 --intermediate 2816 --layers 8]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, parse_options, random_llama  # noqa: E402

from deepen.models.families import LLAMA  # noqa: E402
from deepen.expand.execute import generate_stage  # noqa: E402
from deepen.expand.reconstruct import reconstruct_stage  # noqa: E402
from deepen.expand.weights import extract_stage  # noqa: E402


def main():
    args = parse_options(__doc__, hidden=1024, intermediate=2816, layers=8, vocab=32000, repeats=3, workdir=None)

    root = Path(args.workdir or tempfile.mkdtemp(prefix="deepen-bench-"))
    base = root / "base"
    random_llama(base, args.hidden, args.intermediate, args.layers, 16, 8, args.vocab, shard_mb=256)
    for m in LLAMA.matrices:
        extract_stage(base, m, root / "weights" / f"{m}.safetensors")
    layers = root / "layers"
    generate_stage("llama_pro", {"generator": "copy", "placement": {"interval": 2}, "zero_init": True},
                   base, root / "weights", layers)
    sources = sorted(base.glob("*.safetensors")) + [layers / "new_layers.safetensors"]
    nbytes = sum(p.stat().st_size for p in sources)

    recon, copy = [], []
    for _ in range(args.repeats):
        out = root / "model"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        reconstruct_stage("llama_pro", base, base, layers / "plan.json", layers / "new_layers.safetensors", out, 256)
        recon.append(time.perf_counter() - t)
        dest = root / "copy"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        t = time.perf_counter()
        subprocess.run(["cp", *map(str, sources), str(dest)], check=True)
        copy.append(time.perf_counter() - t)
    out_bytes = sum(p.stat().st_size for p in (root / "model").glob("*.safetensors"))
    r, c = min(recon), min(copy)
    print(f"machine: {machine()}")
    print(f"model: {args.layers} -> {args.layers * 3 // 2} layers, hidden {args.hidden}, bf16; "
          f"copied {nbytes / 1e9:.3f} GB, reconstruction wrote {out_bytes / 1e9:.3f} GB")
    print(f"reconstruction: {r:.2f} s (best of {args.repeats}: {', '.join(f'{x:.2f}' for x in recon)})")
    print(f"cp same bytes:  {c:.2f} s (best of {args.repeats}: {', '.join(f'{x:.2f}' for x in copy)})")
    print(f"ratio reconstruction / cp: {r / c:.2f} (target <= 1.5)")
    if not args.workdir:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
