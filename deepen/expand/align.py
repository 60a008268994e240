"""An aligned base: every layer's MLP neurons and attention heads re-ordered to match its lower neighbour's,
chained bottom to top, so that row i of a matrix type means about the same thing in every layer.

Within a layer the order of MLP neurons (gate and up rows with the matching down column) and of attention
heads (q rows with the matching o columns; whole KV groups with their query heads, k and v rows) is
arbitrary: re-ordering them leaves the model's function unchanged. LESA concatenates a matrix type across
layers and shares one basis over those rows; Avg-DeUS averages them. Both assume row i of layer l and of
layer l+1 correspond, which training does not make true. The alignment is OpT-DeUS's exact optimal transport
(deepen/expand/ot_align.py: an assignment on the rows' Euclidean distances), applied as a permutation: layer l is
matched to the already aligned layer l-1. The residual stream, which every layer shares, is never touched.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from deepen.core.atomic import atomic_dir
from deepen.core.device import stage_device
from deepen.expand.ot_align import OTSettings, as_permutation, neuron_features, transport_plan
from deepen.expand.reconstruct import TOKENIZER_FILES
from deepen.models.families import (COLUMNS_BY_HEAD, COLUMNS_BY_NEURON, ROWS_BY_GROUP, ROWS_BY_HEAD, ROWS_BY_NEURON,
                                    Family, family_for, split_layer_key)
from deepen.models.model_dir import read_model_config
from deepen.models.tensorio import CheckpointReader, write_sharded

EXACT = OTSettings(solver="emd")
ALIGNMENT_FILE = "deepen_alignment.json"


class AlignmentRefused(ValueError):
    pass


@dataclass(frozen=True)
class Shape:
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int

    @classmethod
    def of(cls, config: dict) -> Shape:
        heads = config["num_attention_heads"]
        hidden = config["hidden_size"]
        return cls(heads, config.get("num_key_value_heads") or heads, config.get("head_dim") or hidden // heads, hidden)


@dataclass
class LayerPermutation:
    """New position j holds the old query head ``heads[j]``, KV group ``groups[j]``, MLP neuron ``neurons[j]``."""
    heads: list[int]
    groups: list[int]
    neurons: list[int]


def check_permutable(arch: Family, shape: Shape, layer_shapes: dict[str, list[int]]) -> None:
    """Every per-layer tensor must either move with heads or neurons or be a vector no permutation indexes (the
    family's ``moves``): a norm over the residual stream or over one head's dimensions (shared by all heads)."""
    for matrix, dims in layer_shapes.items():
        if matrix in arch.moves:
            continue
        if matrix in arch.norms and list(dims) in ([shape.hidden], [shape.head_dim]):
            continue
        raise AlignmentRefused(
            f"the {arch.model_types[0]} adapter's {matrix} ({arch.layer_tensors[matrix]}, shape {list(dims)}) is "
            "indexed by something deepen does not know how to re-order with the heads and neurons; this family "
            "cannot be aligned")


def _assignment(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    """perm with a[perm] matched row by row to b (exact OT between uniform marginals: an assignment)."""
    return as_permutation(transport_plan(a, b, EXACT)).tolist()


def layer_permutation(layer: dict, lower: dict, shape: Shape) -> LayerPermutation:
    """How to re-order ``layer``'s heads and neurons to match ``lower`` (both float tensors by matrix type)."""
    rep = shape.heads // shape.kv_heads

    def group_features(L):
        per_group = lambda m: L[m].reshape(shape.kv_heads, -1)  # noqa: E731
        return torch.cat([per_group("q_proj"), per_group("k_proj"), per_group("v_proj")], dim=1)

    groups = _assignment(group_features(layer), group_features(lower))
    q = layer["q_proj"].reshape(shape.heads, -1)
    q_lower = lower["q_proj"].reshape(shape.heads, -1)
    heads = []
    for j, g in enumerate(groups):  # the query heads of group g, now at j, matched to the lower's group j's
        own = list(range(g * rep, (g + 1) * rep))
        inner = _assignment(q[own], q_lower[j * rep:(j + 1) * rep]) if rep > 1 else [0]
        heads += [own[i] for i in inner]
    neurons = _assignment(neuron_features(layer), neuron_features(lower))
    return LayerPermutation(heads=heads, groups=groups, neurons=neurons)


def permute_tensor(move: str | None, t: torch.Tensor, perm: LayerPermutation, shape: Shape) -> torch.Tensor:
    """``t`` re-ordered by ``perm`` as its family's ``moves`` say (``move``); a vector no permutation indexes
    (``move`` None), unchanged."""
    if move == ROWS_BY_HEAD:
        return t.reshape(shape.heads, -1)[perm.heads].reshape(t.shape)
    if move == ROWS_BY_GROUP:
        return t.reshape(shape.kv_heads, -1)[perm.groups].reshape(t.shape)
    if move == COLUMNS_BY_HEAD:
        return t.reshape(t.shape[0], shape.heads, -1)[:, perm.heads].reshape(t.shape)
    if move == ROWS_BY_NEURON:
        return t[perm.neurons]
    if move == COLUMNS_BY_NEURON:
        return t[:, perm.neurons]
    return t


def _layer(reader: CheckpointReader, arch: Family, index: int, device) -> dict:
    return {m: reader.get(arch.tensor_name(index, m)).to(device, torch.float64)
            for m in arch.moves if m in arch.layer_tensors}


def _distance(a: dict, b: dict) -> float:
    """Mean distance between matched MLP neurons of two layers (row i with row i)."""
    fa, fb = neuron_features(a), neuron_features(b)
    return float((fa - fb).norm(dim=1).mean())


def alignment_plan(reader: CheckpointReader, arch: Family, config: dict,
                   device=None) -> tuple[list, list[dict]]:
    """Each layer's permutation (layer 0's is the identity), and per layer the mean distance of its MLP neurons
    to the lower neighbour's before and after alignment, and the share of neurons and heads that moved. The
    cost matrices and distances compute on ``device`` (default the CPU) in float64; the assignments on the CPU."""
    device = torch.device("cpu") if device is None else torch.device(device)
    shape = Shape.of(config)
    num_layers = config["num_hidden_layers"]
    check_permutable(arch, shape, {m: reader.shape(arch.tensor_name(0, m)) for m in arch.matrices})
    identity = LayerPermutation(list(range(shape.heads)), list(range(shape.kv_heads)),
                                list(range(config["intermediate_size"])))
    perms, stats = [identity], []
    lower_aligned = lower_raw = _layer(reader, arch, 0, device)
    for index in tqdm(range(1, num_layers), desc="align layers", leave=False):
        raw = _layer(reader, arch, index, device)
        perm = layer_permutation(raw, lower_aligned, shape)
        aligned = {m: permute_tensor(arch.moves[m], t, perm, shape) for m, t in raw.items()}
        stats.append({"layer": index,
                      "neuron_distance_raw": _distance(raw, lower_raw),
                      "neuron_distance_aligned": _distance(aligned, lower_aligned),
                      "neurons_moved": sum(i != j for j, i in enumerate(perm.neurons)) / len(perm.neurons),
                      "heads_moved": sum(i != j for j, i in enumerate(perm.heads)) / len(perm.heads)})
        perms.append(perm)
        lower_aligned, lower_raw = aligned, raw
    return perms, stats


def align_base(base_dir, out_dir, max_shard_bytes: int = 2 * 1024**3, device=None) -> dict:
    """Write the aligned copy of the HF model directory ``base_dir`` into ``out_dir``: the same files, every
    layer's tensors re-ordered (alignment_plan), every other tensor copied byte for byte. Returns the
    alignment's record (also written as deepen_alignment.json)."""
    base_dir = Path(base_dir)
    config = read_model_config(base_dir)
    arch = family_for(config.get("model_type", ""))
    reader = CheckpointReader(base_dir)
    perms, stats = alignment_plan(reader, arch, config, device)
    shape = Shape.of(config)
    specs = [(n, reader.shape(n), reader.dtype(n)) for n in reader.keys()]
    record = {"base": str(base_dir), "method": "exact assignment to the aligned lower neighbour, bottom to top",
              "layers": stats, "permutations": [asdict(p) for p in perms]}

    def put(writer, name):
        parts = split_layer_key(name)
        matrix = arch.matrix_of(parts[2]) if parts and parts[0] == arch.layer_prefix else None
        if matrix in arch.moves:
            moved = permute_tensor(arch.moves[matrix], reader.get(name), perms[parts[1]], shape)
            writer.write(name, moved.contiguous())
        else:
            writer.copy_bytes(name, *reader.byte_range(name))

    with atomic_dir(out_dir) as tmp:
        write_sharded(tmp, specs, put, max_shard_bytes, desc="write aligned base")
        for name in ("config.json", "generation_config.json", *TOKENIZER_FILES):
            if (base_dir / name).exists():
                shutil.copy2(base_dir / name, tmp / name)
        (tmp / ALIGNMENT_FILE).write_text(json.dumps(record, indent=1))
    return record


def align_stage(base_dir, out_dir, device: str = "auto") -> None:
    """The aligned base (deepen/expand/align.py), its cost matrices on ``device`` (deepen.core.device); the log lists
    how far each layer's neurons lay from its lower neighbour's before and after."""
    record = align_base(base_dir, out_dir, device=stage_device(device))
    for layer in record["layers"]:
        print(f"layer {layer['layer']}: {layer['neurons_moved']:.0%} of neurons and {layer['heads_moved']:.0%} of "
              f"heads moved; mean neuron distance to layer {layer['layer'] - 1} "
              f"{layer['neuron_distance_raw']:.4g} -> {layer['neuron_distance_aligned']:.4g}")
