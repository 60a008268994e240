"""A model directory: its config.json, and the checks before a stage reads it: the weights, config.json and tokenizer
must agree, and a broken file stops the stage with its path rather than somewhere deep in a library."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.models.families import Family, split_layer_key
from deepen.models.tensorio import CheckpointReader


class InputError(ValueError):
    pass


def read_model_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: base_model must be an HF model directory")
    return json.loads(path.read_text())


def tokenizer_vocab_size(model_dir) -> int | None:
    """Ids a fast tokenizer can produce (vocabulary and added tokens), from tokenizer.json; None without one."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable tokenizer.json ({e})") from None
    vocab = data.get("model", {}).get("vocab") or {}
    ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
    ids += [t["id"] for t in data.get("added_tokens", [])]
    return max(ids) + 1 if ids else 0


def check_model_dir(model_dir, arch: Family, config: dict) -> CheckpointReader:
    """Open the weights (missing shards and truncated files are named by CheckpointReader) and check that
    config.json's layer count and the tokenizer fit them. Returns the reader."""
    model_dir = Path(model_dir)
    reader = CheckpointReader(model_dir)
    layers = {parts[1] for name in reader.keys() if (parts := split_layer_key(name)) and parts[0] == arch.layer_prefix}
    declared = config["num_hidden_layers"]
    if layers != set(range(declared)):
        found = f"layers 0..{max(layers)}" if layers == set(range(len(layers))) else f"layers {sorted(layers)}"
        raise InputError(f"{model_dir / 'config.json'}: num_hidden_layers is {declared}, but the weights in "
                         f"{model_dir} hold {found}")
    embed = next((n for n in reader.keys() if "embed_tokens" in n), None)
    vocab = tokenizer_vocab_size(model_dir)
    if embed is not None and vocab is not None:
        rows = reader.shape(embed)[0]
        if vocab > rows:
            raise InputError(f"{model_dir / 'tokenizer.json'}: the tokenizer has {vocab} token ids but the "
                             f"embedding {embed} has {rows} rows; ids above {rows - 1} have no embedding")
    return reader
