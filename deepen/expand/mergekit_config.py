"""mergekit passthrough configs, read and written without mergekit.

A passthrough config lists ``slices``, each one ``source``: a model and a ``layer_range`` [start, end) of its layers,
optionally with a ``scale`` parameter: rules ``{filter: text, value: number}`` tried in order, the first whose filter
is part of a tensor's name giving that tensor's factor (a rule without a filter matches every tensor). That is a
layer plan of copies: every output layer is one base layer, each of its tensors times a factor.

Here a plan's layers as copies are ``(base layer, {matrix type: factor})``, factors of 1 left out. Reading refuses
what is not such a plan (other merge methods, several source models, factors that vary along a slice, filters that
name layers), with the reason.
"""

from __future__ import annotations

from pathlib import Path

from deepen.expand.plan import PlanError

# keys of a config that say nothing about the tensors (where mergekit takes the tokenizer from, the output dtype,
# YAML anchors some configs keep constants under)
HARMLESS_KEYS = {"dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template", "name", "const_tag",
                 "base_model"}
Copy = tuple[int, dict[str, float]]  # (base layer, {matrix type: factor})


def read(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PlanError(f"mergekit config {str(path)!r} not found (a path from the working directory)")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise PlanError(f"mergekit config {str(path)!r} is not YAML: {e}") from None
    problems = problems_of(config)
    if problems:
        raise PlanError(f"mergekit config {str(path)!r}: " + "; ".join(problems))
    return config


def _rules(parameters, where: str, problems: list[str]) -> list[dict]:
    """The scale rules of one slice or source (``parameters: {scale: ...}``), checked."""
    if parameters in (None, {}):
        return []
    if not isinstance(parameters, dict):
        problems.append(f"{where}.parameters: a mapping, got {parameters!r}")
        return []
    others = sorted(set(parameters) - {"scale"})
    if others:
        problems.append(f"{where}.parameters: {', '.join(others)}: passthrough uses only 'scale'")
    scale = parameters.get("scale", [])
    if isinstance(scale, (int, float)):
        scale = [{"value": scale}]
    if not isinstance(scale, list):
        problems.append(f"{where}.parameters.scale: a number or a list of {{filter, value}} rules, got {scale!r}")
        return []
    rules = []
    for i, rule in enumerate(scale):
        at = f"{where}.parameters.scale[{i}]"
        if not isinstance(rule, dict) or "value" not in rule or set(rule) - {"filter", "value"}:
            problems.append(f"{at}: a rule is {{filter: text, value: number}} (filter optional), got {rule!r}")
        elif isinstance(rule["value"], list):
            problems.append(f"{at}: a list of values is a gradient along the slice's layers; deepen takes one "
                            "factor per tensor type, the same in every layer of a slice")
        elif not isinstance(rule["value"], (int, float)) or isinstance(rule["value"], bool):
            problems.append(f"{at}.value: a number, got {rule['value']!r}")
        elif "filter" in rule and not (isinstance(rule["filter"], str) and rule["filter"]):
            problems.append(f"{at}.filter: a piece of a tensor name, got {rule['filter']!r}")
        else:
            rules.append({**({"filter": rule["filter"]} if "filter" in rule else {}), "value": float(rule["value"])})
    return rules


def problems_of(config) -> list[str]:
    """What keeps ``config`` from being a passthrough of slices of one model with whole-tensor scales."""
    if not isinstance(config, dict):
        return [f"a mapping of merge settings, got {type(config).__name__}"]
    problems = []
    method = config.get("merge_method")
    if method != "passthrough":
        problems.append(f"merge_method: {method!r}; deepen reads 'passthrough' only (other merge methods "
                        "combine several models' tensors, which is not a layer plan of one base)")
    if "slices" not in config:
        problems.append("no 'slices': deepen reads passthrough configs of layer slices")
    unknown = sorted(set(config) - HARMLESS_KEYS - {"merge_method", "slices", "parameters"})
    if unknown:
        problems.append(f"{', '.join(unknown)}: not read by deepen (it knows slices, merge_method, parameters and "
                        f"{', '.join(sorted(HARMLESS_KEYS))})")
    _rules(config.get("parameters"), "parameters", problems)
    slices = config.get("slices") or []
    if not isinstance(slices, list) or not slices:
        problems.append("slices: a non-empty list")
        return problems
    models = set()
    for i, item in enumerate(slices):
        where = f"slices[{i}]"
        sources = item.get("sources") if isinstance(item, dict) else None
        if not isinstance(sources, list) or len(sources) != 1 or not isinstance(sources[0], dict):
            problems.append(f"{where}.sources: passthrough takes exactly one source per slice")
            continue
        source = sources[0]
        models.add(str(source.get("model")))
        span = source.get("layer_range")
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)
                and 0 <= span[0] < span[1]):
            problems.append(f"{where}.sources[0].layer_range: [start, end) with 0 <= start < end, got {span!r}")
        _rules(item.get("parameters"), where, problems)
        _rules(source.get("parameters"), f"{where}.sources[0]", problems)
    base = config.get("base_model")
    if base is not None:
        models.add(str(base))
    if len(models) > 1:
        problems.append(f"several source models ({', '.join(sorted(models))}): deepen deepens one base model")
    return problems


def layers_of(config: dict) -> list[tuple[int, list[dict]]]:
    """(base layer, scale rules) per output layer, in order. The nearest ``scale`` holds: a source's over its
    slice's over the config's."""
    top = _rules(config.get("parameters"), "parameters", [])
    out = []
    for item in config["slices"]:
        source = item["sources"][0]
        rules = _rules(source.get("parameters"), "", []) or _rules(item.get("parameters"), "", []) or top
        start, end = source["layer_range"]
        out += [(layer, rules) for layer in range(start, end)]
    return out


def model_of(config: dict) -> str:
    return str(config["slices"][0]["sources"][0].get("model"))


def scales(rules: list[dict], arch, layer: int, position: int) -> dict[str, float]:
    """{matrix type: factor} of base layer ``layer`` placed at ``position``, factors of 1 left out. A rule's filter
    must pick the same tensors whichever layer index the name carries (deepen scales tensor types); one that picks
    no tensor of the family is a mistake."""
    out = {}
    for matrix, rest in arch.layer_tensors.items():
        names = (rest, f"{arch.layer_prefix}.{layer}.{rest}", f"{arch.layer_prefix}.{position}.{rest}")
        for rule in rules:
            if "filter" not in rule:
                factor = rule["value"]
                break
            hits = {rule["filter"] in name for name in names}
            if len(hits) > 1:
                raise PlanError(f"scale filter {rule['filter']!r} names layers (it picks {rest!r} in some layers "
                                "and not in others); deepen takes one factor per tensor type")
            if hits == {True}:
                factor = rule["value"]
                break
        else:
            factor = 1.0
        if factor != 1.0:
            out[matrix] = factor
    for rule in rules:
        if "filter" in rule and not any(rule["filter"] in rest for rest in arch.layer_tensors.values()):
            raise PlanError(f"scale filter {rule['filter']!r} picks no tensor of a {arch.model_types[0]} layer "
                            f"({', '.join(arch.layer_tensors.values())})")
    return out


def copies_of(plan: list[dict], new_copies: dict[int, Copy] | None) -> list[Copy] | None:
    """Every output layer of ``plan`` as a copy, given the new layers' (``new_copies``, by id); None when a new
    layer is not a copy."""
    out = []
    for entry in plan:
        if entry["from"] == "base":
            out.append((entry["layer"], {}))
        elif new_copies is None or entry["id"] not in new_copies:
            return None
        else:
            out.append(new_copies[entry["id"]])
    return out


def passthrough(copies: list[Copy], arch, model: str, dtype: str) -> dict:
    """The passthrough config of ``copies`` over ``model``: runs of consecutive base layers with the same factors
    are one slice; a factor is a rule on the tensor's full name within the layer."""
    runs: list[list] = []
    for layer, factors in copies:
        if runs and runs[-1][1] == layer and runs[-1][2] == factors:
            runs[-1][1] = layer + 1
        else:
            runs.append([layer, layer + 1, factors])
    slices = []
    for start, end, factors in runs:
        source = {"model": model, "layer_range": [start, end]}
        if factors:
            rules = [{"filter": arch.layer_tensors[m], "value": float(v)} for m, v in factors.items()]
            source["parameters"] = {"scale": rules + [{"value": 1.0}]}
        slices.append({"sources": [source]})
    return {"slices": slices, "merge_method": "passthrough", "dtype": dtype}


def write(config: dict, path: str | Path, header: str = "") -> None:
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    Path(path).write_text("".join(f"# {line}\n" for line in header.splitlines()) + text)
