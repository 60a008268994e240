"""The one source of defaults: the config schema, which ships inside the package (deepen/schema.yaml;
config/schema.yaml is a link to it). The workflow fills them into the config when it checks it; code called
without the workflow (tests, benchmarks, the GPU runner) takes them from here, never from its own fallbacks."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.yaml"


@lru_cache(maxsize=1)
def schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def defaults(properties: dict) -> dict:
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


def training_defaults() -> dict:
    """Defaults of every training section (base.train, cpt, sft.train; growth.train overlays base.train), and of
    the CPT-only distribution keys."""
    return {**defaults(schema()["definitions"]["train"]["properties"]),
            **defaults(schema()["properties"]["cpt"]["properties"])}


def section_defaults(section: str) -> dict:
    """Defaults of a top-level config section (``predictor``, ``eval``, ``resources``, ...)."""
    return defaults(schema()["properties"][section]["properties"])


def method_defaults() -> dict:
    """Defaults of the options every method takes (freeze, cpt, placement, ...)."""
    return defaults(schema()["properties"]["methods"]["additionalProperties"]["properties"])


def base_model_defaults() -> dict:
    """Defaults of a GGUF base (``base_model: {gguf: FILE}`` or ``{package: NAME}``): the dtype it is imported in."""
    return defaults(schema()["properties"]["base_model"]["oneOf"][2]["properties"])


def auto_placement_defaults() -> dict:
    """Defaults of ``placement: {auto: N}`` (what it ranks the seams by)."""
    placement = schema()["properties"]["methods"]["additionalProperties"]["properties"]["placement"]
    return next(defaults(o["properties"]) for o in placement["oneOf"] if "auto" in o.get("properties", {}))
