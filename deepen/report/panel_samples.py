"""The samples panel (rule samples, deepen/evaluate/samples.py): each prompt of report.samples with every model's
greedy answer at step 0 and its rows' answers after CPT (seed 0), one table per prompt."""

from __future__ import annotations

import json

from deepen.core.paths import result_path
from deepen.report.panels import panel

SHOWN_CHARS = 160


def sample_files(facts):
    if not facts.sample_stages:
        return None
    return {stage: result_path("samples", "samples", stage=stage) for stage in facts.sample_stages}


def cell(text: str) -> str:
    """One answer as a table cell: on one line, pipes escaped, cut at SHOWN_CHARS."""
    text = " ".join(text.split()).replace("|", "\\|")
    return (text[:SHOWN_CHARS] + " …") if len(text) > SHOWN_CHARS else (text or "(nothing)")


def sample_lines(init: dict, cpt: dict) -> list[str]:
    """summary.md's tables: ``init`` {model: answers}, ``cpt`` {method/freeze: answers}."""
    if not init:
        return []
    prompts = [a["prompt"] for a in next(iter(init.values()))]
    chat = any(a["chat"] for answers in init.values() for a in answers)
    lines = ["## Samples", "",
             f"Greedy answers to `report.samples`' prompts{' through each model' + chr(39) + 's chat template' if chat else ''}"
             ", at step 0 and after CPT (seed 0). A model whose new layers break it shows it here first.", ""]
    for i, prompt in enumerate(prompts):
        lines += [f"**{cell(prompt)}**", "", "| model | step 0 | after CPT |", "|---|---|---|"]
        for model, answers in init.items():
            method = model.split("/")[0]
            after = "<br>".join(f"{row.split('/')[1]}: {cell(a[i]['completion'])}" for row, a in cpt.items()
                                if row.split("/")[0] == method and (model == method or model.endswith("/seed0")))
            lines.append(f"| {model} | {cell(answers[i]['completion'])} | {after} |")
        lines.append("")
    return lines


@panel("samples", sample_files)
def render(inputs, params, view):
    def models(key):
        paths = inputs.get(key) or []
        return json.loads(open(paths[0]).read())["models"] if paths else {}

    return sample_lines(models("init"), models("cpt"))
