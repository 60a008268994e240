"""Panels of LESA's premise, present when a method reads its artifacts: the continuity of layers in SVD space
(rule svd_continuity), and the layer predictor on held-out layers against the trivial predictors (rule
predictor_heldout)."""

from __future__ import annotations

import json
from pathlib import Path

from ..methods.lesa import SVD, predictor_spaces
from .panels import panel


def continuity_files(facts):
    if SVD not in facts.method_artifacts:
        return None
    return {"ratios": "results/report/svd_continuity.json", "figure": "results/report/svd_continuity.png"}


def heldout_files(facts):
    spaces = predictor_spaces(facts.method_artifacts)
    if not spaces:
        return None
    return {space: [f"results/predictor_heldout/{space}/{m}.json" for m in facts.linear_matrices] for space in spaces}


@panel("lesa_continuity", continuity_files)
def continuity_panel(inputs, params, view) -> list[str]:
    return continuity_section(json.loads(Path(inputs["ratios"][0]).read_text()))


@panel("lesa_predictor", heldout_files)
def heldout_panel(inputs, params, view) -> list[str]:
    heldout = {space: {Path(p).stem: p for p in paths} for space, paths in inputs.items()}
    return ["## LESA predictor on held-out layers", "",
            "Each held-out layer is predicted from its two neighbours by a predictor fitted without that "
            "layer's triplet (leave-one-out); the predictor that makes the new layers trains on every "
            "triplet. MSE, lower is better, best per row in bold. `svd`: rows of V blocks (LESA); `nosvd`: "
            "raw weight rows (the ablation); the spaces have different scales, compare within a row. A "
            "predictor above `zeros` predicts worse than nothing.", "",
            *predictor_table(heldout), ""]


def continuity_section(ratios: dict[str, dict]) -> list[str]:
    lines = ["## Continuity of layers in SVD space", "",
             "LESA's premise: consecutive layers' SVD blocks V_l lie closer together than arbitrary pairs. "
             "`ratio`: mean distance between consecutive layers' blocks (top 32 singular directions) over the mean "
             "distance of all layer pairs; below 1 means neighbours are closer. `nearest adjacent`: the share of "
             "layers whose nearest layer is one of their neighbours, against the share random order would give.", "",
             "| matrix | ratio | nearest adjacent | by chance |", "|---|---|---|---|"]
    for matrix, c in ratios.items():
        lines.append(f"| {matrix} | {c['ratio']:.3f} | {c['adjacent_nearest']:.0%} | {c['adjacent_by_chance']:.0%} |")
    return lines + ["", "![svd continuity](svd_continuity.png)", ""]


def predictor_table(heldout: dict[str, dict[str, str]]) -> list[str]:
    """Markdown rows: for every leave-one-out fit, the held-out layer's MSE of the predictor against the trivial
    predictors, per space and matrix type. ``heldout``: space -> matrix -> results/predictor_heldout json."""
    keys = ("predictor", "mean_of_neighbours", "copy_lower", "copy_upper", "zero")
    lines = ["| space | matrix | held-out layer | predictor MSE | mean of neighbours | copy lower | copy upper | zeros |",
             "|---|---|---|---|---|---|---|---|"]
    for space, per_matrix in heldout.items():
        for matrix, path in per_matrix.items():
            for fit in json.loads(Path(path).read_text())["fits"]:
                b = fit["against_baselines"]
                best = min(b, key=b.get)
                cells = [f"**{b[k]:.3e}**" if k == best else f"{b[k]:.3e}" for k in keys]
                lines.append(f"| {space} | {matrix} | {fit['layer']} | " + " | ".join(cells) + " |")
    return lines
