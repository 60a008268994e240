"""LESA's stages on a randomly initialised model of the Llama-3.2-1B shape, on the CPU.

Each stage runs in its own process so its peak RSS is its own: extraction, SVD (every matrix type),
predictor training (every matrix type) and generation (top-half placement, 16 -> 24 layers). Next to
them, in the same run, the naive baseline: the model loaded whole in float32 and `torch.linalg.svd`
of the explicit concatenation of one matrix type, and the SVD stage's arithmetic alone (its Gram,
eigendecomposition and projection on float32 layers already in memory), which bounds what the stage
can reach on this CPU. Targets: every stage's peak RSS <= 4 GiB; the SVD stage >= 5x faster than the
naive SVD for the same matrix type. Each clock starts after the stage's imports and, for the naive
baseline, after loading the model (reported as setup_seconds).

    python benchmarks/lesa_1b.py --workdir /tmp/lesa1b [--layers 16 --hidden 2048 --intermediate 8192] [--naive-matrices q_proj,gate_proj]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import add_shape_arguments, machine, run_stage  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shape_arguments(ap)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--naive-matrices", default="q_proj,k_proj,gate_proj,down_proj",
                    help="comma-separated; o_proj, v_proj and up_proj share the shapes of q, k and gate")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--svd-only", action="store_true", help="run extraction, the SVD stages and the naive SVD")
    args = ap.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    base = root / "base"

    print(f"machine: {machine()}")
    results: dict = {}
    if not (base / "config.json").exists():
        run_stage("create random model (bf16)", f"""
from common import random_llama
random_llama({str(base)!r}, {args.hidden}, {args.intermediate}, {args.layers}, {args.heads}, {args.kv_heads},
             {args.vocab}, shard_mb=2048)
""", args.threads, results)
    from deepen.models.families import LLAMA

    linear = LLAMA.linear
    run_stage("extraction (9 matrix types)", f"""
for m in LLAMA.matrices:
    extract_stage({str(base)!r}, m, {str(root / 'weights')!r} + f"/{{m}}.safetensors")
""", args.threads, results,
    setup="from deepen.expand.weights import extract_stage\nfrom deepen.models.families import LLAMA")
    # A stage's output must not exist beforehand: replacing a 1 GiB file costs the kernel time too.
    shutil.rmtree(root / "svd", ignore_errors=True)
    for m in linear:
        run_stage(f"svd {m}", f"""
svd_stage({str(root / 'weights' / (m + '.safetensors'))!r}, {str(root / 'svd' / (m + '.safetensors'))!r},
          {str(root / 'svd' / (m + '.json'))!r})
""", args.threads, results, setup="from deepen.expand.lesa.svd import svd_stage\nimport deepen.expand.lesa.svd")
    cfg = dict(hidden=256, lr=1e-3, weight_decay=0.01, batch_size=64, epochs=args.epochs, norm_weight=5e-4,
               val_layer=None, seed=0)
    for m in [] if args.svd_only else linear:
        run_stage(f"predictor {m} ({args.epochs} epochs)", f"""
predictor_stage({str(root / 'svd' / (m + '.safetensors'))!r}, "V", {cfg!r},
                {str(root / 'predictor' / (m + '.pt'))!r}, {str(root / 'predictor' / (m + '.json'))!r}, threads={args.threads})
""", args.threads, results,
    setup="from deepen.expand.lesa.predictor import predictor_stage\nimport deepen.expand.lesa.predictor")
    if not args.svd_only:
        run_stage("generation (lesa, top_half)", f"""
generate_stage("lesa", {{"generator": "lesa", "placement": "top_half", "norm_source": "mean", "zero_init": False}},
               {str(base)!r}, {str(root / 'weights')!r}, {str(root / 'layers')!r},
               artifacts={{'svd': {str(root / 'svd')!r}, 'predictor': {str(root / 'predictor')!r}}})
""", args.threads, results, setup="from deepen.expand.execute import generate_stage\nimport deepen.expand.methods")
    naive_matrices = [] if args.skip_naive else args.naive_matrices.split(",")
    from deepen.models.tensorio import CheckpointReader

    for m in naive_matrices:
        layers, d_out, d_in = CheckpointReader(root / "weights" / f"{m}.safetensors").shape("weights")
        # The SVD stage's arithmetic alone: its Gram, eigendecomposition and projection on float32
        # layers already in memory, without reading, converting or writing anything.
        run_stage(f"compute only: svd {m}", f"""
u_t = np.ascontiguousarray(gram_eigenvectors(lambda layer: stack[layer], {layers}).T)
for w in stack:
    u_t @ w
""", args.threads, results, setup=f"""
import numpy as np
from deepen.expand.lesa.svd import gram_eigenvectors
rng = np.random.default_rng(0)
stack = [rng.standard_normal(({d_out}, {d_in}), dtype=np.float32) for _ in range({layers})]
""")
        # Loading the model is setup: the clock covers the concatenation and the SVD.
        run_stage(f"naive: load fp32 + svd {m}", f"""
params = dict(model.named_parameters())
w = torch.cat([params[LLAMA.tensor_name(i, {m!r})].detach() for i in range({args.layers})], dim=1)
u, s, vt = torch.linalg.svd(w, full_matrices=False)
with safe_open({str(root / 'svd')!r} + "/{m}.safetensors", "pt") as f:  # reads S alone
    ours = f.get_tensor("S").double()
print(json.dumps({{"max_rel_S_difference_e6": ((ours - s.double()).abs() / s.double()).max().item() * 1e6}}))
""", args.threads, results, setup=f"""
from transformers import AutoModelForCausalLM
from safetensors import safe_open
from deepen.models.families import LLAMA
model = AutoModelForCausalLM.from_pretrained({str(base)!r}, dtype=torch.float32)
""")
    (root / "results.json").write_text(json.dumps(results, indent=2))
    for m in naive_matrices:
        ours, naive = results[f"svd {m}"]["seconds"], results[f"naive: load fp32 + svd {m}"]["seconds"]
        bound = results[f"compute only: svd {m}"]["seconds"]
        print(f"SVD speed-up over naive, {m}: {naive:.2f} s / {ours:.2f} s = {naive / ours:.1f}x (target >= 5); "
              f"compute alone: {naive:.2f} s / {bound:.2f} s = {naive / bound:.1f}x")
    peak = max(r["peak_rss_mb"] for k, r in results.items() if not k.startswith(("naive", "create")))
    print(f"max peak RSS of the pipeline stages: {peak / 1024:.2f} GiB (target <= 4)")


if __name__ == "__main__":
    main()
