"""Where LESA's trained predictor stops being reproducible between two machines of one kind: the same predictor
trained on the same SVD blocks under settings that two machines can differ in (the vector instruction set torch's
kernels and MKL's dispatch use, the thread count), each in a fresh process; prints how far each lands from the
first, in the predictor's weights and in the layer it then generates.

    python benchmarks/predictor_reproducibility.py --svd RUN/results/svd/q_proj.safetensors [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import machine  # noqa: E402
from deepen.core.device import CPU_VECTOR_PATH  # noqa: E402

# (label, environment) of each training; the first is the reference
SETTINGS = [
    ("as installed, 1 thread", {}),
    ("as installed, 1 thread, again", {}),
    ("2 threads", {"THREADS": "2"}),
    ("MKL's AVX2 path pinned", {"MKL_CBWR": "AVX2"}),
    ("MKL's compatible path", {"MKL_CBWR": "COMPATIBLE"}),
    ("torch kernels without SIMD", {"ATEN_CPU_CAPABILITY": "default"}),
    ("the workflow's pin", CPU_VECTOR_PATH),
]

CHILD = r"""
import json, sys, torch
from deepen.expand.lesa.predictor import BlockSource, train_predictor
svd, epochs, threads, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
source = BlockSource(svd, "V")
cfg = {"hidden": 256, "lr": 1e-3, "batch_size": 64, "epochs": epochs, "norm_weight": 5e-4, "seed": 0,
       "weight_decay": 0.01}
model, report = train_predictor(source, cfg, log=lambda line: None)
mid = source.num_layers // 2
with torch.no_grad():
    layer = model(source.get(mid), source.get(mid + 1))
torch.save({"state": model.state_dict(), "layer": layer}, out)
print(json.dumps({"final_train_loss": report["train_loss"][-1]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--svd", required=True, help="an SVD file of the svd rule (results/svd/<matrix>.safetensors)")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    import torch

    print(machine())
    repo = Path(__file__).resolve().parent.parent
    results, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, env) in enumerate(SETTINGS):
            out = Path(tmp) / f"{i}.pt"
            threads = env.get("THREADS", "1")
            # each setting alone: none of the workflow's pins inherited from the caller
            clean = {k: v for k, v in os.environ.items() if k not in CPU_VECTOR_PATH}
            run_env = {**clean, **{k: v for k, v in env.items() if k != "THREADS"}, "PYTHONPATH": str(repo)}
            proc = subprocess.run([sys.executable, "-c", CHILD, args.svd, str(args.epochs), threads, str(out)],
                                  env=run_env, capture_output=True, text=True, check=True)
            loss = json.loads(proc.stdout.strip().splitlines()[-1])["final_train_loss"]
            blob = torch.load(out)
            if reference is None:
                reference = blob
            weights = max((blob["state"][k] - reference["state"][k]).abs().max().item() for k in blob["state"])
            layer = ((blob["layer"] - reference["layer"]).norm() / reference["layer"].norm()).item()
            results.append((label, loss, weights, layer))
    print(f"{'setting':32} {'final train loss':>17} {'max |Δ weight|':>15} {'generated block, rel. Δ':>24}")
    for label, loss, weights, layer in results:
        print(f"{label:32} {loss:17.6e} {weights:15.3e} {layer:24.3e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
