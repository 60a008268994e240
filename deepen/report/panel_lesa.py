"""Panels of LESA's premise, present when a method reads its artifacts: the continuity of layers in SVD space
(rule svd_continuity), and the layer predictor on held-out layers against the trivial predictors (rule
predictor_heldout)."""

from __future__ import annotations

import os

import json
from pathlib import Path

from deepen.core.paths import result_path
from deepen.expand.methods.lesa import SVD, predictor_spaces
from deepen.report.panels import panel


ALIGNED = "aligned"  # the label of the aligned base's rows, beside the base's


def continuity_files(facts):
    """The base's continuity (when a method reads SVD blocks, on either base), and the aligned base's beside it
    when a method with ``align: true`` reads them."""
    if SVD not in facts.method_artifacts and SVD not in facts.aligned_artifacts:
        return None
    files = {"ratios": result_path("svd_continuity", "ratios"), "figure": result_path("svd_continuity", "png")}
    if SVD in facts.aligned_artifacts:
        files.update(aligned_ratios=result_path("svd_continuity", "ratios", aligned=True),
                     aligned_figure=result_path("svd_continuity", "png", aligned=True))
    return files


def heldout_files(facts):
    """Leave-one-out fits per predictor space: on the base for every space a method reads (aligned or not), and on
    the aligned base for the spaces the aligned methods read."""
    spaces = predictor_spaces({**facts.method_artifacts, **facts.aligned_artifacts})
    if not spaces:
        return None
    files = {space: [result_path("predictor_heldout", "fits", space=space, matrix=m) for m in facts.linear_matrices]
             for space in spaces}
    for space in predictor_spaces(facts.aligned_artifacts):
        files[f"{space} {ALIGNED}"] = [result_path("predictor_heldout", "fits", aligned=True, space=space, matrix=m)
                                       for m in facts.linear_matrices]
    return files


@panel("lesa_continuity", continuity_files)
def continuity_panel(inputs, params, view) -> list[str]:
    ratios = json.loads(Path(inputs["ratios"][0]).read_text())
    aligned = json.loads(Path(inputs["aligned_ratios"][0]).read_text()) if "aligned_ratios" in inputs else None
    return continuity_section(ratios, aligned)


@panel("lesa_predictor", heldout_files)
def heldout_panel(inputs, params, view) -> list[str]:
    heldout = {space: {Path(p).stem: p for p in paths} for space, paths in inputs.items()}
    return ["## LESA predictor on held-out layers", "",
            "Each held-out layer is predicted from its two neighbours by a predictor fitted without that "
            "layer's triplet (leave-one-out); the predictor that makes the new layers trains on every "
            "triplet. MSE, lower is better, best per row in bold. `svd`: rows of V blocks (LESA); `nosvd`: "
            "raw weight rows (the ablation); `aligned`: the same on the aligned base, whose layers' heads and "
            "neurons are re-ordered to match their lower neighbours'. The spaces have different scales, compare "
            "within a row. A predictor above `zeros` predicts worse than nothing.", "",
            *predictor_table(heldout), "", *shrink_table(heldout)]


def shrink_table(heldout: dict[str, dict[str, str]]) -> list[str]:
    """The factor `shrink: auto` scales LESA's new matrices by, per space and matrix type (0: zero-init, 1: as
    published), from the same leave-one-out fits."""
    matrices = list(next(iter(heldout.values())))
    lines = ["The factor that minimises the held-out layers' error of the scaled prediction in weight space "
             "(what LESA with `shrink: auto` scales each new matrix by; 0 is zero-init, 1 LESA as published):", "",
             "| space | " + " | ".join(matrices) + " |", "|---|" + "---|" * len(matrices)]
    for space, per_matrix in heldout.items():
        factors = [json.loads(Path(per_matrix[m]).read_text()).get("shrink_factor") for m in matrices]
        lines.append(f"| {space} | " + " | ".join("—" if f is None else f"{f:.3f}" for f in factors) + " |")
    return lines + [""]


def continuity_section(ratios: dict[str, dict], aligned: dict[str, dict] | None = None) -> list[str]:
    """The continuity table, with the aligned base's columns beside the base's when given."""
    lines = ["## Continuity of layers in SVD space", "",
             "LESA's premise: consecutive layers' SVD blocks V_l lie closer together than arbitrary pairs. "
             "`ratio`: mean distance between consecutive layers' blocks (top 32 singular directions) over the mean "
             "distance of all layer pairs; below 1 means neighbours are closer. `nearest adjacent`: the share of "
             "layers whose nearest layer is one of their neighbours, against the share random order would give."]
    if aligned is None:
        lines += ["", "| matrix | ratio | nearest adjacent | by chance |", "|---|---|---|---|"]
        for matrix, c in ratios.items():
            lines.append(f"| {matrix} | {c['ratio']:.3f} | {c['adjacent_nearest']:.0%} | {c['adjacent_by_chance']:.0%} |")
        return lines + ["", "![svd continuity](svd_continuity.png)", ""]
    lines += [" `aligned`: the same on the aligned base (each layer's heads and neurons re-ordered to match its "
              "lower neighbour's: the same function).", "",
              "| matrix | ratio | ratio aligned | nearest adjacent | nearest adjacent aligned | by chance |",
              "|---|---|---|---|---|---|"]
    for matrix, c in ratios.items():
        a = aligned[matrix]
        lines.append(f"| {matrix} | {c['ratio']:.3f} | {a['ratio']:.3f} | {c['adjacent_nearest']:.0%} | "
                     f"{a['adjacent_nearest']:.0%} | {c['adjacent_by_chance']:.0%} |")
    report_dir = os.path.dirname(result_path("report", "md"))
    aligned_figure = os.path.relpath(result_path("svd_continuity", "png", aligned=True), report_dir)
    return lines + ["", "![svd continuity](svd_continuity.png)", "",
                    f"![svd continuity, aligned base]({aligned_figure})", ""]


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
