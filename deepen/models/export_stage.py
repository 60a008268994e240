"""One model of the run out to llama.cpp, ollama and the Hub.

Rule export_gguf writes the model as a GGUF file (deepen/models/gguf_export.py) and an ollama Modelfile beside it,
once per model; rule export_model the Hub-ready folder: the HF files (hard links to the run's, copies where links
cannot be made), the GGUF and Modelfile, and a card with the Hub's metadata block, what was done and what the run
measured (step-0 loss, loss after CPT, benchmark scores with 95% intervals, the samples), rewritten when the report
changes. ``hf upload OWNER/NAME`` on that folder publishes it."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

from deepen.core.atomic import atomic_dir
from deepen.models import card
from deepen.models.gguf_export import export_gguf, modelfile

# what the Hub folder takes of the model folder (its card is written anew)
HUB_FOLDER_FILES = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
               "deepen_plan.json", "mergekit.yaml")


def _rows(path) -> list[dict]:
    if not path or not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def measured(facts: dict, summary_csv=None, init_csv=None, benchmarks_csv=None, samples_json=None) -> dict:
    """What the run measured of the exported model: {step0_loss, final_loss, final_ci95, seeds, benchmarks: [(task,
    metric, score, ci95, items)], samples: [answers]}, from the report's tables and the samples; keys absent where
    the run has no figure."""
    out: dict = {}
    if samples_json and Path(samples_json).exists():
        answers = json.loads(Path(samples_json).read_text())["models"]
        out["samples"] = answers.get(facts.get("row") or facts["model"], [])
    model, row = facts["model"], facts.get("row")
    for r in _rows(init_csv):
        if r["method"] == model.split("/")[0]:
            out["step0_loss"] = _num(r["init_val_loss_mean"])
    for r in _rows(summary_csv):
        if row and r["row"] == row:
            out["final_loss"], out["final_ci95"] = _num(r["final_val_loss_mean"]), _num(r["final_val_loss_ci95"])
            out["seeds"] = int(float(r["seeds"]))
    stage, name = ("after CPT", row) if row else ("step 0", model)
    out["benchmarks"] = [(r["task"], r["metric"], _num(r["score"]), 1.96 * (_num(r["se"]) or 0.0), r["items"])
                         for r in _rows(benchmarks_csv) if r["stage"] == stage and r["model"] == name]
    return out


def export_card(facts: dict, figures: dict, gguf_name: str, code: dict) -> str:
    """The Hub folder's card: metadata, what was done, what was measured, how to run it."""
    source = facts["base"]
    trained = bool(facts.get("row"))
    meta = card.metadata(source, facts["method"], facts.get("generator"), "finetune" if trained else "merge",
                         facts.get("datasets", ()), facts.get("license"))
    what = (f"the `{facts['method']}` expansion after continued pretraining (row `{facts['row']}`, seed 0)"
            if trained else f"the `{facts['method']}` expansion at step 0, before any further training")
    commit = code.get("git_commit", "") + (" (uncommitted changes)" if code.get("git_dirty") else "")
    lines = [f"# {facts['name']}", "", f"Made by deepen: {what}.", f"Base model: {card.describe_base(source)}.",
             f"deepen's code: {'commit `' + commit + '`' if commit else 'source digest `' + code['source_sha256'] + '`'}.",
             ""]
    if facts.get("options"):
        lines += ["The method's settings, as the run's config gives them:", "", *card.options_block(facts["options"]),
                  ""]
    if facts.get("plan"):
        new = [i for i, e in enumerate(facts["plan"]) if e["from"] == "new"]
        lines += [f"Layers: {facts.get('base_layers')} -> {len(facts['plan'])}; new layers at output positions {new}.",
                  ""]
    lines += ["## Measured in this run", ""]
    rows = []
    if figures.get("step0_loss") is not None:
        rows.append(("val loss at step 0 (nats/token)", f"{figures['step0_loss']:.4f}"))
    if figures.get("final_loss") is not None:
        ci = figures.get("final_ci95")
        rows.append((f"val loss after CPT ({figures['seeds']} seed(s))",
                     f"{figures['final_loss']:.4f}" + (f" ± {ci:.4f} (95% CI)" if ci else "")))
    for task, metric, score, ci, items in figures.get("benchmarks", []):
        if score is not None:
            rows.append((f"{task} {metric} ({items} items)", f"{score:.3f} ± {ci:.3f} (95%)"))
    if rows:
        lines += ["| measure | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], "",
                  "Small runs measure small differences with wide intervals; the run's report says which differences "
                  "its seeds and items can decide.", ""]
    else:
        lines += ["The run measured nothing for this model.", ""]
    if figures.get("samples"):
        chat = " (through the chat template)" if figures["samples"][0]["chat"] else ""
        lines += ["## Samples", "", f"Greedy answers{chat}:", ""]
        for a in figures["samples"]:
            lines += [f"- **{a['prompt']}** {' '.join(a['completion'].split()) or '(nothing)'}"]
        lines.append("")
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
              'model = AutoModelForCausalLM.from_pretrained("OWNER/NAME")',
              'tokenizer = AutoTokenizer.from_pretrained("OWNER/NAME")', "```", "",
              f"llama.cpp: `llama-cli -m {gguf_name}`; ollama: `ollama create NAME -f Modelfile` in this folder.", ""]
    return card.render(meta, "\n".join(lines))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def has_chat_template(model_dir) -> bool:
    model_dir = Path(model_dir)
    config = model_dir / "tokenizer_config.json"
    return (model_dir / "chat_template.jinja").exists() or bool(
        config.exists() and json.loads(config.read_text()).get("chat_template"))


def gguf_stage(model_dir, gguf_out, modelfile_out, gguf_type: str, name: str, tokenizer_gguf=None,
               license: str | None = None) -> dict:
    """The model as a GGUF file and an ollama Modelfile beside it."""
    from deepen.core.atomic import atomic_path

    gguf_out = Path(gguf_out)
    info = export_gguf(model_dir, gguf_out, gguf_type, tokenizer_gguf=tokenizer_gguf, name=name, license=license)
    with atomic_path(modelfile_out) as tmp:
        Path(tmp).write_text(modelfile(gguf_out.name, has_chat_template(model_dir)))
    return info


def folder_stage(model_dir, gguf, modelfile_path, folder_out, facts: dict, expanded=None, summary_csv=None,
                 init_csv=None, benchmarks_csv=None, samples_json=None, code: dict | None = None) -> dict:
    """The Hub-ready folder (``facts``: the job table's export facts; ``expanded``: the expanded model's folder,
    whose plan the card shows; ``code``: deepen's version, as the manifest names it). Returns the figures the card
    holds."""
    model_dir, gguf = Path(model_dir), Path(gguf)
    figures = measured(facts, summary_csv, init_csv, benchmarks_csv, samples_json)
    plan = card.read_card_facts(expanded) if expanded else {}
    if plan:
        facts = {**facts, "plan": plan["plan"]}
    with atomic_dir(folder_out) as tmp:
        for pattern in HUB_FOLDER_FILES:
            for f in sorted(model_dir.glob(pattern)):
                _link_or_copy(f, tmp / f.name)
        _link_or_copy(gguf, tmp / gguf.name)
        _link_or_copy(Path(modelfile_path), tmp / "Modelfile")
        (tmp / "README.md").write_text(export_card(facts, figures, gguf.name, code or {"source_sha256": "unknown"}))
    return figures
