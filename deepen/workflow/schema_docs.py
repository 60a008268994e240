"""The configuration reference (docs/configuration.md), written from the schema: every option with its type,
default and description, so the page cannot say what the schema does not.

    python -m deepen.workflow.schema_docs > docs/configuration.md      # tests/test_docs.py fails when they differ
"""

from __future__ import annotations

import json

HEADER = """# Configuration reference

Every option of a deepen config, written from the schema the workflow checks a config against
(`python -m deepen.workflow.schema_docs > docs/configuration.md`; a test fails when this page and the schema disagree).
An option with a default may be left out: the check fills it in; *required* marks one that must be given where
its section is. `methods` takes one entry per row, named as you like (`<name>` below); each method declares
options of its own beside these, checked too ([Methods](methods.md)). [Configuration](configuration_guide.md)
says how config files combine.
"""


def _resolve(spec: dict, definitions: dict) -> dict:
    """``spec`` with a ``$ref`` to the schema's definitions merged in (the referring spec's keys win)."""
    ref = spec.get("$ref")
    if not ref:
        return spec
    target = definitions[ref.rsplit("/", 1)[1]]
    return {**_resolve(target, definitions), **{k: v for k, v in spec.items() if k != "$ref"}}


def type_of(spec: dict, definitions: dict) -> str:
    spec = _resolve(spec, definitions)
    for key in ("oneOf", "anyOf"):
        if key in spec:
            return " or ".join(type_of(s, definitions) for s in spec[key])
    if "enum" in spec:
        return " | ".join(f"`{v}`" for v in spec["enum"])
    kind = spec.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    bounds = [f"≥ {spec['minimum']}" if "minimum" in spec else "",
              f"> {spec['exclusiveMinimum']}" if "exclusiveMinimum" in spec else "",
              f"≤ {spec['maximum']}" if "maximum" in spec else ""]
    bounds = ", ".join(b for b in bounds if b)
    return f"{kind} ({bounds})" if bounds else kind


def _default(spec: dict) -> str:
    if "default" not in spec:
        return "required" if spec.get("_required") else "—"
    return f"`{json.dumps(spec['default'])}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(properties: dict, required: list, definitions: dict, prefix: str) -> list[str]:
    rows = []
    for name, spec in properties.items():
        full = f"{prefix}{name}"
        resolved = _resolve(spec, definitions)
        marked = {**resolved, "_required": name in required}
        rows.append(f"| `{full}` | {_cell(type_of(spec, definitions))} | {_cell(_default(marked))} | "
                    f"{_cell(resolved.get('description', ''))} |")
        # an option that may be an object (or one of several): each object's keys, once
        objects = [resolved] + [_resolve(o, definitions) for key in ("oneOf", "anyOf") for o in resolved.get(key, [])]
        seen: set[str] = set()
        for nested in objects:
            keys = {k: v for k, v in nested.get("properties", {}).items() if k not in seen}
            seen |= set(keys)
            rows += _rows(keys, nested.get("required", []), definitions, f"{full}.")
        nested = resolved
        if isinstance(nested.get("additionalProperties"), dict) and nested["additionalProperties"].get(
                "properties"):
            entry = _resolve(nested["additionalProperties"], definitions)
            rows += _rows(entry["properties"], entry.get("required", []), definitions, f"{full}.<name>.")
    return rows


def reference(schema: dict) -> str:
    """The page: one table per top-level section."""
    definitions = schema.get("definitions", {})
    out = [HEADER]
    top = [(k, v) for k, v in schema["properties"].items()]
    simple = [(k, v) for k, v in top if not _resolve(v, definitions).get("properties")]
    out += ["## Top level", "", "| option | type | default | description |", "|---|---|---|---|"]
    out += _rows(dict(simple), schema.get("required", []), definitions, "")
    for name, spec in top:
        resolved = _resolve(spec, definitions)
        if not resolved.get("properties"):
            continue
        out += ["", f"## `{name}`", ""]
        if resolved.get("description"):
            out += [_cell(resolved["description"]), ""]
        out += ["| option | type | default | description |", "|---|---|---|---|"]
        out += _rows(resolved["properties"], resolved.get("required", []), definitions, f"{name}.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    from deepen.core.schema import schema

    print(reference(schema()), end="")
