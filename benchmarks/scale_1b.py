"""The LESA and SOLAR paths end to end on a randomly initialised Llama-3.2-1B-shaped model saved in
bfloat16 as sharded safetensors, on the CPU.

Stages, each in its own process (its peak RSS is its own): extraction, SVD and predictor for every
matrix type, LESA generation (top half, 16 -> 24 layers) and reconstruction, SOLAR generation (m = L/4)
and reconstruction; after each reconstruction, `cp` of the same bytes (the shards it wrote). The
expanded models are checked to be bfloat16 and split into as many shards as --shard-mb requires.
Targets: every stage <= 4 GiB peak RSS; reconstruction <= 1.5x the copy.

    python benchmarks/scale_1b.py --workdir /tmp/scale/1b
    python benchmarks/scale_1b.py --workdir /tmp/scale/half --hidden 1024 --intermediate 4096 --heads 16 --kv-heads 4

results.json in the workdir holds the shape and every stage's figures; project_8b.py fits the stages'
costs across several such runs and projects them to an 8B model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import add_shape_arguments, machine, run_stage  # noqa: E402
from deepen.models.families import LLAMA  # noqa: E402

COPY_SETUP = """
import glob, os, shutil, subprocess
sources = sorted(glob.glob({out!r} + "/*.safetensors"))
shutil.rmtree({dest!r}, ignore_errors=True); os.makedirs({dest!r})
"""
COPY_CODE = """
t = time.perf_counter()
subprocess.run(["cp", *sources, {dest!r}], check=True)
print(json.dumps({{"cp_seconds": time.perf_counter() - t}}))
"""

CHECK_CODE = """
import json as j
from pathlib import Path
index = j.loads(Path({out!r}, "model.safetensors.index.json").read_text())
shards = sorted(set(index["weight_map"].values()))
from safetensors import safe_open
dtypes = set()
for s in shards:
    with safe_open(str(Path({out!r}, s)), "pt") as f:
        dtypes |= {{str(f.get_slice(k).get_dtype()) for k in f.keys()}}
assert dtypes == {{"BF16"}}, dtypes
sizes = [Path({out!r}, s).stat().st_size for s in shards]
limit = {shard_mb} * 2**20
# as many shards as the size limit requires (a single tensor above the limit gets a shard of its own)
assert len(shards) >= -(-sum(sizes) // (limit + 2**20)), (sizes, limit)
print(j.dumps({{"shards": len(shards), "largest_shard_mb": max(sizes) / 2**20}}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(ap)
    ap.add_argument("--epochs", type=int, default=1, help="predictor epochs (10 in the default config; time scales with it)")
    ap.add_argument("--predictor-hidden", type=int, default=256)
    ap.add_argument("--shard-mb", type=int, default=1024)
    args = ap.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    base, w = root / "base", root / "weights"
    print(f"machine: {machine()}")
    shape = dict(layers=args.layers, hidden=args.hidden, intermediate=args.intermediate, heads=args.heads,
                 kv_heads=args.kv_heads, vocab=args.vocab, epochs=args.epochs, predictor_hidden=args.predictor_hidden)
    print(f"shape: {shape}")
    results: dict = {}
    if not (base / "config.json").exists():
        run_stage("create random model (bf16)", f"""
from common import random_llama
random_llama({str(base)!r}, {args.hidden}, {args.intermediate}, {args.layers}, {args.heads}, {args.kv_heads},
             {args.vocab}, shard_mb={args.shard_mb})
""", args.threads, results)
    run_stage("extraction", f"""
from deepen.expand.weights import extract_stage
from deepen.models.families import LLAMA
for m in LLAMA.matrices:
    extract_stage({str(base)!r}, m, {str(w)!r} + f"/{{m}}.safetensors")
""", args.threads, results)
    for m in LLAMA.linear:
        run_stage(f"svd {m}", f"""
from deepen.expand.lesa.svd import svd_stage
svd_stage({str(w / (m + '.safetensors'))!r}, {str(root / 'svd' / (m + '.safetensors'))!r},
          {str(root / 'svd' / (m + '.json'))!r})
""", args.threads, results)
    cfg = dict(hidden=args.predictor_hidden, lr=1e-3, weight_decay=0.01, batch_size=64, epochs=args.epochs,
               norm_weight=5e-4, val_layer=None, seed=0)
    for m in LLAMA.linear:
        run_stage(f"predictor {m}", f"""
from deepen.expand.lesa.predictor import predictor_stage
predictor_stage({str(root / 'svd' / (m + '.safetensors'))!r}, "V", {cfg!r},
                {str(root / 'predictor' / (m + '.pt'))!r}, {str(root / 'predictor' / (m + '.json'))!r}, threads={args.threads})
""", args.threads, results)
    methods = {"lesa": {"generator": "lesa", "placement": "top_half", "norm_source": "mean", "zero_init": False},
               "solar": {"generator": "solar"}}
    for method, opts in methods.items():
        layers, out = root / "layers" / method, root / "models" / method
        run_stage(f"generation {method}", f"""
from deepen.expand.execute import generate_stage
generate_stage({method!r}, {opts!r}, {str(base)!r}, {str(w)!r}, {str(layers)!r},
               artifacts={{'svd': {str(root / 'svd')!r}, 'predictor': {str(root / 'predictor')!r}}})
""", args.threads, results)
        run_stage(f"reconstruction {method}", f"""
import shutil; shutil.rmtree({str(out)!r}, ignore_errors=True)
from deepen.expand.reconstruct import reconstruct_stage
reconstruct_stage({method!r}, {str(base)!r}, {str(base)!r}, {str(layers / 'plan.json')!r},
                  {str(layers / 'new_layers.safetensors')!r}, {str(out)!r}, {args.shard_mb})
""", args.threads, results)
        run_stage(f"cp same bytes {method}", COPY_CODE.format(dest=str(root / "copy" / method)), args.threads, results,
                  setup=COPY_SETUP.format(out=str(out), dest=str(root / "copy" / method)))
        run_stage(f"check {method} output", CHECK_CODE.format(out=str(out), shard_mb=args.shard_mb), 1, results)
    (root / "results.json").write_text(json.dumps({"shape": shape, "stages": results}, indent=2))
    for method in methods:
        r, c = results[f"reconstruction {method}"]["seconds"], results[f"cp same bytes {method}"]["cp_seconds"]
        print(f"reconstruction / cp, {method}: {r:.1f} s / {c:.1f} s = {r / c:.2f} (target <= 1.5)")
    peak = max(r["peak_rss_mb"] for k, r in results.items() if not k.startswith(("create", "cp", "check")))
    print(f"max peak RSS of the pipeline stages: {peak / 1024:.2f} GiB (target <= 4)")


if __name__ == "__main__":
    main()
