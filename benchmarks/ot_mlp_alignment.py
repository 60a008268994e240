"""Time and peak RSS to align one MLP of the Llama-3.2-1B shape (8192 neurons, hidden 2048) with deepen's
exact plan (`emd`: a linear assignment, scipy) and entropic plan (`sinkhorn`, POT), against POT's own exact
`ot.emd` on the same cost matrix.

The neurons' joint features (gate row, up row, down column: 6144 numbers each) of two random MLPs, the
second a noisy neuron permutation of the first. Each solver runs in its own process (own peak RSS).
Target: exact alignment of one 8192-neuron MLP in <= 60 s; deepen's exact plan and ot.emd reach the same cost.

    python benchmarks/ot_mlp_alignment.py [--neurons 8192 --hidden 2048]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CODE = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np, torch
torch.set_num_threads(2)
from deepen.expand.ot_align import OTSettings, transport_plan, neuron_features
g = torch.Generator().manual_seed(0)
n, d = {n}, {d}
B = {{"gate_proj": torch.randn(n, d, generator=g), "up_proj": torch.randn(n, d, generator=g),
      "down_proj": torch.randn(d, n, generator=g)}}
perm = torch.randperm(n, generator=g)
A = {{"gate_proj": B["gate_proj"][perm], "up_proj": B["up_proj"][perm], "down_proj": B["down_proj"][:, perm]}}
A = {{k: v + 0.5 * torch.randn(v.shape, generator=g) for k, v in A.items()}}
fa, fb = neuron_features(A), neuron_features(B)
t = time.perf_counter()
solver = {solver!r}
import ot
if solver == "pot_emd":  # POT's exact solver, what deepen's exact plans were computed with before
    cost = ot.dist(fa.double().numpy(), fb.double().numpy(), metric="euclidean")
    marg = np.full(n, 1.0 / n)
    plan = torch.from_numpy(ot.emd(marg, marg, cost, numItermax=10_000_000))
else:  # deepen's own path: "emd" is the exact plan as a linear assignment
    plan = transport_plan(fa, fb, OTSettings(solver=solver, reg={reg}))
elapsed = time.perf_counter() - t
cost = ot.dist(fa.double().numpy(), fb.double().numpy(), metric="euclidean")
total = float((plan.numpy() * cost).sum())
match = float((perm[plan.argmax(dim=0)] == torch.arange(n)).float().mean())
print(json.dumps({{"seconds": elapsed, "cost": total, "recovered": match,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, default=8192)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--reg", type=float, default=0.06)
    ap.add_argument("--solvers", nargs="+", default=["emd", "pot_emd", "sinkhorn"])
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from common import machine

    print(f"machine: {machine()}")
    print(f"MLP: {args.neurons} neurons, hidden {args.hidden}; features per neuron {3 * args.hidden}")
    for solver in args.solvers:
        src = CODE.format(repo=str(HERE.parent), n=args.neurons, d=args.hidden, solver=solver, reg=args.reg)
        proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True)
        if proc.returncode:
            print(f"{solver}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{solver:24s} {r['seconds']:7.1f} s  peak RSS {r['peak_rss_gib']:.2f} GiB  "
              f"transport cost {r['cost']:.6f}  permutation recovered {100 * r['recovered']:.1f}%")


if __name__ == "__main__":
    main()
