"""Reconstruction: execute a layer plan by streaming tensors from the base and the generated layers
into a new sharded HF model directory. It knows nothing about methods: the plan carries everything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deepen.core.atomic import atomic_dir
from deepen.core.disk import ensure_free
from deepen.expand import mergekit_config
from deepen.expand import plan as plans
from deepen.models.families import family_for, split_layer_key
from deepen.models.model_dir import read_model_config
from deepen.models.tensorio import CheckpointReader, same_bytes, tensor_nbytes, write_sharded


class ReconstructionError(RuntimeError):
    pass

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "chat_template.jinja")


def output_tensors(reader: CheckpointReader, plan: list[dict], arch) -> list[tuple[str, tuple]]:
    """(output name, source) in file order. A source is ("base", name) or ("new", name)."""
    layer_rests: dict[int, list[str]] = {}
    head, tail = [], []  # embeddings before the layers, final norm and head after
    for name in reader.keys():
        parts = split_layer_key(name)
        if parts and parts[0] == arch.layer_prefix:
            layer_rests.setdefault(parts[1], []).append(parts[2])
        else:
            (head if "embed" in name else tail).append(name)
    out = [(n, ("base", n)) for n in head]
    for i, entry in enumerate(plan):
        if entry["from"] == "base":
            src = entry["layer"]
            for rest in layer_rests[src]:
                out.append((f"{arch.layer_prefix}.{i}.{rest}", ("base", f"{arch.layer_prefix}.{src}.{rest}")))
        else:
            for rest in layer_rests[entry["between"][0]]:
                matrix = arch.matrix_of(rest)
                if matrix is None:
                    raise KeyError(f"layer tensor {rest!r} is not covered by the {arch.model_types[0]} adapter")
                out.append((f"{arch.layer_prefix}.{i}.{rest}", ("new", f"new.{entry['id']}.{matrix}")))
    out += [(n, ("base", n)) for n in tail]
    return out


def check_untouched_layers(written: CheckpointReader, base: CheckpointReader, plan: list[dict], arch) -> None:
    """Every tensor the plan carries over from the base must be the base's, at the position the plan gives
    it (same length, same bytes in sampled windows): a wrong mapping or a copy from the wrong place stops
    the stage, naming layer and tensor."""
    for name in base.keys():
        parts = split_layer_key(name)
        if not parts or parts[0] != arch.layer_prefix:
            if not same_bytes(written.byte_range(name), base.byte_range(name)):
                raise ReconstructionError(f"{name} differs from the base's")
    for i, entry in enumerate(plan):
        if entry["from"] != "base":
            continue
        prefix = f"{arch.layer_prefix}.{entry['layer']}."
        for name in base.keys():
            if name.startswith(prefix):
                out_name = f"{arch.layer_prefix}.{i}.{name[len(prefix):]}"
                if out_name not in written or not same_bytes(written.byte_range(out_name), base.byte_range(name)):
                    raise ReconstructionError(
                        f"output layer {i} ({out_name}) is not base layer {entry['layer']}'s "
                        f"{arch.matrix_of(name[len(prefix):]) or name[len(prefix):]}, as the plan says")


def expanded_config(config: dict, plan: list[dict]) -> dict:
    config = dict(config)
    config["num_hidden_layers"] = len(plan)
    # Per-layer config lists follow the plan; a new layer takes its lower neighbour's entry.
    for key in ("layer_types",):
        if isinstance(config.get(key), list):
            src = [e["layer"] if e["from"] == "base" else e["between"][0] for e in plan]
            config[key] = [config[key][s] for s in src]
    return config


def layer_copies(plan_info: dict) -> list[mergekit_config.Copy] | None:
    """Every output layer as (base layer, {matrix type: factor}) when all are copies of base layers; None when a
    new layer is computed."""
    recorded = plan_info.get("copies")
    new = None if recorded is None else {c["id"]: (c["layer"], c["scale"]) for c in recorded}
    return mergekit_config.copies_of(plan_info["plan"], new)


MERGEKIT_FILE = "mergekit.yaml"


def model_card(method: str, plan_info: dict, base: str, num_layers: int, base_layers: int,
               facts: dict | None = None) -> str:
    """The expanded model's card: the Hub's metadata block, then the method, its settings and the layer plan.
    ``facts``: where the base came from, its license, the corpus's datasets and the method's options (the job
    table's ``card_facts``)."""
    from deepen.models import card

    facts = facts or {}
    source = facts.get("base") or {"kind": "directory", "path": base}
    meta = card.metadata(source, method, plan_info.get("generator"), "merge", facts.get("datasets", ()),
                         facts.get("license"))
    new = [i for i, e in enumerate(plan_info["plan"]) if e["from"] == "new"]
    lines = [
        f"# {method}: {base_layers} -> {num_layers} layers",
        "",
        f"Depth-up-scaled by deepen with method `{method}` "
        f"(generator `{plan_info.get('generator')}`), before any further training.",
        f"Base model: {card.describe_base(source)}; its layers read from `{base}`.",
        "",
    ]
    if facts.get("options"):
        lines += ["The method's settings, as the run's config gives them:", "", *card.options_block(facts["options"]),
                  ""]
    lines += [
        f"New layers at output positions: {new if new else 'none (re-used base layers only)'}.",
        "",
        "| output layer | source |",
        "|---|---|",
    ]
    for i, e in enumerate(plan_info["plan"]):
        src = f"base layer {e['layer']}" if e["from"] == "base" else f"new #{e['id']} between {e['between']}"
        lines.append(f"| {i} | {src} |")
    if layer_copies(plan_info) is not None:
        lines += ["", f"Every layer is a copy of a base layer (some tensors times a factor): `{MERGEKIT_FILE}` here is "
                  "the mergekit passthrough config that makes this model from the base."]
    else:
        lines += ["", f"No mergekit passthrough config makes this model: generator `{plan_info.get('generator')}` "
                  "computes its new layers (they are not copies of base layers, tensor by tensor times a factor)."]
    return card.render(meta, "\n".join(lines) + "\n")


def reconstruct(base_dir, tokenizer_dir, plan_path, new_layers_path, out_dir, method: str,
                max_shard_bytes: int = 2 * 1024**3, card_facts: dict | None = None) -> Path:
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    config = read_model_config(base_dir)
    arch = family_for(config.get("model_type", ""))
    plan_info = plans.load(plan_path)
    plan = plan_info["plan"]
    plans.validate(plan, config["num_hidden_layers"])
    sources = {"base": CheckpointReader(base_dir), "new": CheckpointReader(new_layers_path)}
    tensors = output_tensors(sources["base"], plan, arch)
    specs = [(name, sources[kind].shape(src), sources[kind].dtype(src)) for name, (kind, src) in tensors]
    ensure_free(out_dir.parent, sum(tensor_nbytes(s, d) for _, s, d in specs), f"reconstruct {method}")
    source_of = dict(tensors)

    def put(writer, name):
        kind, src = source_of[name]
        writer.copy_bytes(name, *sources[kind].byte_range(src))

    with atomic_dir(out_dir) as tmp:
        write_sharded(tmp, specs, put, max_shard_bytes, desc=f"reconstruct {method}")
        check_untouched_layers(CheckpointReader(tmp), sources["base"], plan, arch)
        (tmp / "config.json").write_text(json.dumps(expanded_config(config, plan), indent=2))
        if (base_dir / "generation_config.json").exists():
            shutil.copy2(base_dir / "generation_config.json", tmp / "generation_config.json")
        for name in TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).exists():
                shutil.copy2(Path(tokenizer_dir) / name, tmp / name)
        shutil.copy2(plan_path, tmp / "deepen_plan.json")
        card = model_card(method, plan_info, str(base_dir), len(plan), config["num_hidden_layers"], card_facts)
        (tmp / "README.md").write_text(card)
        copies = layer_copies(plan_info)
        if copies is not None:
            dtype = str(sources["base"].dtype(arch.tensor_name(0, arch.matrices[0]))).removeprefix("torch.")
            mergekit_config.write(mergekit_config.passthrough(copies, arch, str(base_dir), dtype),
                                  tmp / MERGEKIT_FILE,
                                  header=f"{method}: {config['num_hidden_layers']} -> {len(plan)} layers, made by "
                                         f"deepen; mergekit's passthrough makes the same model from {base_dir}")
    return out_dir


def reconstruct_stage(method, base_dir, tokenizer_dir, plan_path, new_layers_path, out_dir, max_shard_mb,
                      card_facts: dict | None = None) -> None:
    reconstruct(base_dir, tokenizer_dir, plan_path, new_layers_path, out_dir, method,
                max_shard_bytes=max_shard_mb * 1024**2, card_facts=card_facts)
