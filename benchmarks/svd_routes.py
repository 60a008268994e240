"""The SVD stage's two routes on a real base's matrices: the CPU's (float32 Gram matrix by a symmetric rank-k update,
scipy's eigh) and the GPU's (float64 Gram matrix and eigh in torch), run here on the CPU. Prints per matrix type the
largest and median relative difference of the singular values (those above 1e-5 of the largest), each route's
wall time and its largest reconstruction error. The GPU route must give the CPU route's singular values within
1e-6 relative.

    python benchmarks/svd_routes.py --weights results/weights --threads 1      # after a SmolLM2 run's extraction
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

MATRICES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def main() -> None:
    import torch

    from deepen.expand.lesa.svd import svd_stage
    from deepen.models.tensorio import CheckpointReader

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="the extracted weights folder (results/weights)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    work = Path(tempfile.mkdtemp())
    worst = 0.0
    for m in MATRICES:
        singular, seconds, error = {}, {}, {}
        for route, float64 in (("float32", False), ("float64", True)):
            t0 = time.perf_counter()
            report = svd_stage(Path(args.weights) / f"{m}.safetensors", work / f"{m}_{route}.safetensors",
                               work / f"{m}_{route}.json", float64_gram=float64)
            seconds[route] = time.perf_counter() - t0
            error[route] = report["max_relative_reconstruction_error"]
            singular[route] = CheckpointReader(work / f"{m}_{route}.safetensors").get("S").double().numpy()
        a, b = singular["float32"], singular["float64"]
        keep = a > 1e-5 * a.max()
        rel = np.abs(a - b)[keep] / b[keep]
        worst = max(worst, float(rel.max()))
        print(f"{m:10s} rank {len(a):5d}  S rel. diff max {rel.max():.1e} median {np.median(rel):.1e}   "
              f"time float32 {seconds['float32']:6.2f} s float64 {seconds['float64']:6.2f} s   "
              f"reconstruction error {error['float32']:.1e} / {error['float64']:.1e}", flush=True)
    print(f"largest relative difference {worst:.1e} (target <= 1e-6): {'met' if worst <= 1e-6 else 'NOT met'}")


if __name__ == "__main__":
    main()
