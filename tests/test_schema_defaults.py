"""Every default has one owner, the schema (deepen/schema.yaml): no code falls back to a value the schema already gives
(``section.get("key", value)`` where the schema's default of a key of that name is that value)."""

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# a method's own ``seed`` option, which the job table sets per CPT seed (deepen/workflow/jobs.py: generation_options);
# not a config key, though several config sections have a key of that name
NOT_CONFIG_KEYS = {("deepen/expand/methods/interpolation.py", "seed")}


def schema_defaults(node, out=None) -> dict[str, list]:
    """{key: the defaults the schema gives keys of that name} anywhere in the schema; empty containers left out (an
    absent section read as empty is not a value)."""
    out = {} if out is None else out
    if isinstance(node, dict):
        for key, spec in node.get("properties", {}).items():
            if isinstance(spec, dict) and "default" in spec and spec["default"] not in ({}, [], None):
                out.setdefault(key, []).append(spec["default"])
        for value in node.values():
            schema_defaults(value, out)
    elif isinstance(node, list):
        for value in node:
            schema_defaults(value, out)
    return out


def fallbacks(source: str, known: dict[str, list]) -> list[tuple[int, str, object]]:
    """(line, key, value) of every ``x.get("key", value)`` in ``source`` whose value the schema gives a key of that
    name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) and node.args[0].value in known):
            try:
                value = ast.literal_eval(node.args[1])
            except ValueError:
                continue
            if value in known[node.args[0].value]:
                found.append((node.lineno, node.args[0].value, value))
    return found


def test_no_code_repeats_a_default_the_schema_gives():
    known = schema_defaults(yaml.safe_load((REPO / "deepen/schema.yaml").read_text()))
    repeated = {}
    for path in sorted((REPO / "deepen").rglob("*.py")):
        name = str(path.relative_to(REPO))
        found = [f for f in fallbacks(path.read_text(), known) if (name, f[1]) not in NOT_CONFIG_KEYS]
        if found:
            repeated[name] = found
    assert not repeated, repeated


def test_the_check_finds_a_repeated_default():
    known = schema_defaults(yaml.safe_load((REPO / "deepen/schema.yaml").read_text()))
    assert known["weight_decay"] and known["precision"]
    source = 'a = cfg.get("weight_decay", 0.01)\nb = cfg.get("precision", "auto")\nc = cfg.get("precision", "x")\n'
    assert [f[1] for f in fallbacks(source, known)] == ["weight_decay", "precision"]
