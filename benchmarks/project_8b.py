"""Project the scale_1b.py stages to an 8B model from runs at several sizes.

Each stage's wall time and peak RSS is fitted, across the runs given, as a·work + c: `work` is the
stage's operation or byte count computed from the shape (below), c its fixed cost (start-up, imports);
a and c are least-squares fits to the measurements, not assumed. The fit's largest relative error on
the measured runs is printed beside it, then the projection for Llama-3.1-8B's shape (32 layers, hidden
4096, intermediate 14336, 32 heads, 8 KV heads, vocabulary 128256).

    python benchmarks/project_8b.py /tmp/scale/quarter /tmp/scale/half /tmp/scale/1b [...]

Work per stage, for a matrix type with weights d_out × d_in in each of L layers and r = min(d_out, L·d_in):
  svd:            d_out²·L·d_in (Gram and projection passes) and d_out³ (eigendecomposition); two terms
  predictor:      epochs·L·r·d_in·h_pred (every row of every layer's block through the MLP)
  generation:     new layers × Σ_types (d_out·r·d_in + r·d_in·h_pred)  (LESA), bytes written (SOLAR)
  extraction, reconstruction, cp: bytes written
Peak RSS: svd d_out² + d_out·d_in (Gram, eigenvectors, one layer); predictor and generation r·d_in
summed over types (one layer's blocks); the streaming stages the largest tensor (vocab × hidden).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LLAMA_8B = dict(layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256, epochs=1,
                predictor_hidden=256)
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GiB = 2**30


def matrix_shapes(s: dict) -> dict[str, tuple[int, int]]:
    h, i, kv = s["hidden"], s["intermediate"], s["kv_heads"] * s["hidden"] // s["heads"]
    return {"q_proj": (h, h), "k_proj": (kv, h), "v_proj": (kv, h), "o_proj": (h, h),
            "gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i)}


def layer_params(s: dict) -> int:
    return sum(a * b for a, b in matrix_shapes(s).values()) + 2 * s["hidden"]


def model_bytes(s: dict, layers: int) -> float:
    return 2.0 * (layers * layer_params(s) + 2 * s["vocab"] * s["hidden"] + s["hidden"])  # bfloat16


def features(stage: str, s: dict) -> tuple[list[float], float]:
    """(time features, RSS feature) of one stage at shape ``s``."""
    L, ph = s["layers"], s["predictor_hidden"]
    shapes = matrix_shapes(s)
    rank = {m: min(o, L * i) for m, (o, i) in shapes.items()}
    block = sum(rank[m] * shapes[m][1] for m in LINEAR)
    largest = float(s["vocab"] * s["hidden"])
    new_lesa, new_solar = L // 2, L - 2 * (L // 4)
    kind, _, rest = stage.partition(" ")
    if kind == "svd":
        o, i = shapes[rest]
        return [o * o * L * i, o ** 3], o * o + o * i
    if kind == "predictor":
        o, i = shapes[rest]
        return [s["epochs"] * L * rank[rest] * i * ph], rank[rest] * i
    if stage == "generation lesa":
        return [new_lesa * sum(shapes[m][0] * rank[m] * shapes[m][1] + rank[m] * shapes[m][1] * ph
                               for m in LINEAR)], block + layer_params(s)
    if stage == "generation solar":
        return [1.0], 1.0  # a plan only: no tensors
    if stage == "extraction":
        return [L * layer_params(s) * 2.0], largest
    if stage.endswith("lesa"):
        return [model_bytes(s, L + new_lesa)], largest
    if stage.endswith("solar"):
        return [model_bytes(s, L + new_solar)], largest
    raise KeyError(stage)


def family(stage: str) -> str:
    """Stages that share one fit: the SVD of every matrix type, the predictor of every matrix type."""
    return stage.split(" ")[0] if stage.startswith(("svd", "predictor")) else stage


def fit(points: list[tuple[list[float], float]]) -> tuple[np.ndarray, float]:
    """Least squares of y on the features and a constant; largest relative error on the points."""
    x = np.array([f + [1.0] for f, _ in points], dtype=float)
    y = np.array([v for _, v in points], dtype=float)
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1
    coef, *_ = np.linalg.lstsq(x / scale, y, rcond=None)
    coef = coef / scale
    pred = x @ coef
    return coef, float(np.max(np.abs(pred - y) / np.maximum(y, 1e-9)))


def predict(coef: np.ndarray, feats: list[float]) -> float:
    return float(np.dot(coef, feats + [1.0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="workdirs of scale_1b.py runs (each with results.json)")
    ap.add_argument("--epochs", type=int, default=1, help="predictor epochs of the projection")
    args = ap.parse_args()
    runs = [json.loads((Path(r) / "results.json").read_text()) for r in args.runs]
    target = {**LLAMA_8B, "epochs": args.epochs}
    stages = [k for k in runs[0]["stages"] if not k.startswith(("create", "check"))]
    time_points, rss_points = {}, {}
    for run in runs:
        for stage in stages:
            r = run["stages"][stage]
            seconds = r.get("cp_seconds", r["seconds"])
            tf, mf = features(stage, run["shape"])
            time_points.setdefault(family(stage), []).append((tf, seconds))
            rss_points.setdefault(family(stage), []).append(([mf], r["peak_rss_mb"] * 2**20))
    print("shapes measured: " + "; ".join(
        f"L{r['shape']['layers']} h{r['shape']['hidden']} i{r['shape']['intermediate']}" for r in runs))
    print(f"projected to: {target}")
    print(f"{'stage':28s} {'time fit err':>12s} {'8B time':>10s} {'RSS fit err':>12s} {'8B peak RSS':>12s}")
    total = 0.0
    worst_rss = 0.0
    for stage in stages:
        fam = family(stage)
        tcoef, terr = fit(time_points[fam])
        mcoef, merr = fit(rss_points[fam])
        tf, mf = features(stage, target)
        t, m = max(predict(tcoef, tf), 0.0), predict(mcoef, [mf])
        if not stage.startswith("cp"):
            total += t
            worst_rss = max(worst_rss, m)
        print(f"{stage:28s} {terr:11.0%} {t:9.0f}s {merr:11.0%} {m / GiB:10.2f} GiB")
    print(f"pipeline stages total (LESA and SOLAR paths, {args.epochs} predictor epoch(s)): {total / 60:.0f} min; "
          f"largest peak RSS {worst_rss / GiB:.2f} GiB")


if __name__ == "__main__":
    main()
