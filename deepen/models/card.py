"""Model cards the Hugging Face Hub reads: a YAML metadata block (base model and how this one relates to it, library,
pipeline, tags, datasets, license) over a body that says what was done and, when the run has measured it, what was
measured. Every model folder deepen writes carries one, so that ``hf upload OWNER/NAME FOLDER`` publishes it as is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

TAGS = ["deepen", "depth-up-scaling"]
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def front_matter(text: str) -> dict:
    """The YAML metadata block at the head of a card; {} when there is none."""
    found = _FRONT_MATTER.match(text)
    if not found:
        return {}
    meta = yaml.safe_load(found.group(1))
    return meta if isinstance(meta, dict) else {}


def base_license(base_dir, gguf_file=None) -> str | None:
    """The base's license: its card's metadata (a Hub snapshot's README.md), or a GGUF file's general.license."""
    card = Path(base_dir) / "README.md" if base_dir else None
    if card is not None and card.exists():
        found = front_matter(card.read_text(errors="replace")).get("license")
        if found:
            return str(found)
    if gguf_file:
        from deepen.models.gguf_file import read_header

        found = read_header(gguf_file).get("general.license")
        if found:
            return str(found)
    return None


def metadata(base: dict, method: str | None, generator: str | None, relation: str, datasets=(),
             license: str | None = None) -> dict:
    """The card's metadata block. ``base``: where the base came from (deepen/workflow/design.py ``base_source``); a
    Hub base is named, a folder or file is not (the Hub would read it as a repository name). ``relation``: 'merge' for
    a model made from the base's layers, 'finetune' for one trained further."""
    meta: dict = {}
    if base.get("kind") == "hub":
        meta["base_model"] = base["repo"]
        meta["base_model_relation"] = relation
    meta["library_name"] = "transformers"
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = list(dict.fromkeys(TAGS + [t for t in (method, generator) if t]))
    if datasets:
        meta["datasets"] = list(datasets)
    if license:
        meta["license"] = license
    return meta


def describe_base(base: dict) -> str:
    if base.get("kind") == "hub":
        return f"`{base['repo']}` at revision `{base['revision']}` (commit `{base['commit']}`)"
    if base.get("kind") == "gguf":
        return f"the GGUF file `{base['file']}`" + (f" of the pip package `{base['package']}`" if base.get("package")
                                                    else "")
    if base.get("kind") == "directory":
        return f"the model folder `{base['path']}`"
    return "the small Llama deepen trained from scratch on the run's corpus"


def render(meta: dict, body: str) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def options_block(options: dict) -> list[str]:
    """The method's settings as the config gives them, as a fenced YAML block."""
    return ["```yaml", yaml.safe_dump(options, sort_keys=True).rstrip(), "```"]


def read_card_facts(model_dir) -> dict:
    """What deepen recorded in a folder it made: the plan (deepen_plan.json), if any."""
    plan = Path(model_dir) / "deepen_plan.json"
    return json.loads(plan.read_text()) if plan.exists() else {}
