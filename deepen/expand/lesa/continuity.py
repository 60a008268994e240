"""LESA's premise measured: whether consecutive layers' SVD blocks lie closer together than arbitrary pairs
(rule svd_continuity: a figure and the ratios the report's LESA panel shows)."""

from __future__ import annotations

import math
from pathlib import Path

from deepen.core.atomic import atomic_path, write_json


def continuity(svd_path, top_rows: int = 32) -> dict:
    """Each layer's block V_l (its ``top_rows`` leading singular directions) as one point: the 2-D PCA of the
    points, the mean consecutive distance over the mean distance of all layer pairs (``ratio``; 1 means
    neighbours are no closer than any two layers), and how many layers have an adjacent layer as their
    nearest (``adjacent_nearest``, against ``adjacent_by_chance`` for points in random order)."""
    import torch

    from deepen.models.tensorio import CheckpointReader

    v = CheckpointReader(svd_path).get_slice("V")
    layers, rows, _ = v.get_shape()
    k = min(top_rows, rows)
    x = torch.stack([v[l : l + 1, :k][0].reshape(-1) for l in range(layers)]).double()
    dist = torch.cdist(x, x)
    consecutive = torch.diagonal(dist, 1).mean().item()
    pairs = dist[torch.triu(torch.ones(layers, layers, dtype=torch.bool), 1)].mean().item()
    nearest = (dist + torch.diag(torch.full((layers,), math.inf, dtype=dist.dtype))).argmin(dim=1)
    adjacent = sum(abs(int(nearest[l]) - l) == 1 for l in range(layers)) / layers
    # a layer's nearest other layer, drawn at random: 1 of L-1 for the two ends, 2 of L-1 elsewhere
    chance = (2 * (layers - 2) + 2) / layers / (layers - 1)
    centred = x - x.mean(0)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    points = (centred @ vt[:2].T).numpy()
    return {"points": points, "ratio": consecutive / pairs, "adjacent_nearest": adjacent, "adjacent_by_chance": chance}


def plot_continuity(svd_paths: dict[str, str], path) -> dict[str, dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    n = len(svd_paths)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(7, 5.2 * cols), 4.6 * rows), squeeze=False)
    for ax, (matrix, svd_path) in zip(axes.flat, svd_paths.items()):
        c = continuity(svd_path)
        points = c.pop("points")
        out[matrix] = c
        ax.plot(points[:, 0], points[:, 1], "-", color="lightgray", zorder=1)
        sc = ax.scatter(points[:, 0], points[:, 1], c=range(len(points)), cmap="viridis", zorder=2)
        for i, (px, py) in enumerate(points):
            ax.annotate(str(i), (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_title(f"{matrix}: consecutive / all-pairs distance {c['ratio']:.2f}\nnearest layer adjacent: "
                     f"{c['adjacent_nearest']:.0%} (chance {c['adjacent_by_chance']:.0%})", fontsize=9)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        fig.colorbar(sc, ax=ax, label="layer")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Each layer's SVD block V_l (top 32 singular directions) in 2-D PCA,\njoined in layer order",
                 fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip("."))
    plt.close(fig)
    return out


def continuity_stage(svd_paths: dict[str, str], png_path, json_path) -> None:
    write_json(plot_continuity(svd_paths, png_path), json_path)
