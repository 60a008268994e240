"""Exporting an HF model directory deepen made to a GGUF file (llama.cpp's format, which ollama runs), and the ollama
Modelfile beside it.

The inverse of deepen/models/gguf_import.py, from the same per-family layout (deepen/models/families.py): the config's
fields go to the architecture's metadata keys, each tensor to its llama.cpp name, with the converter's changes made
again (Llama's q and k rows put back in the rotary order llama.cpp's kernel reads; Gemma's norms stored as 1 + w).
Norms and other vectors are written in float32, matrices in the type asked for. The tokenizer goes in as llama.cpp
reads it: copied key for key from the GGUF the base came from when there is one, else built from tokenizer.json (a
byte-level BPE vocabulary). Tensors stream one at a time; a model never sits in memory whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepen.models.families import Family, family_for
from deepen.models.gguf_file import GGUFError

# a matrix's type in the file, by the name `export.type` gives it; general.file_type's number for each
TYPES = ("f32", "f16", "bf16", "q8_0")
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}
Q8_BLOCK = 32

# HF config field -> metadata key after "{arch}." (the import's, written back)
_CONFIG_KEYS = {
    "num_hidden_layers": "block_count", "hidden_size": "embedding_length", "intermediate_size": "feed_forward_length",
    "num_attention_heads": "attention.head_count", "num_key_value_heads": "attention.head_count_kv",
    "max_position_embeddings": "context_length", "rms_norm_eps": "attention.layer_norm_rms_epsilon",
}
GLOBAL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                  "lm_head.weight": "output.weight"}
# byte-level BPE pre-tokenizers llama.cpp knows, by model type (its `tokenizer.ggml.pre`)
BPE_PRE = {"qwen2": "qwen2", "qwen3": "qwen2", "llama": "llama-bpe"}


def _ggml(name: str):
    import gguf

    return {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
            "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[name]


def family_layout(config: dict) -> Family:
    family = family_for(config.get("model_type", ""))
    if family.gguf is None:
        raise GGUFError(f"model type {config.get('model_type')!r} has no GGUF layout in deepen/models/families.py")
    return family


def export_problems(config: dict, gguf_type: str) -> list[str]:
    """What stops a model of this config from being written as llama.cpp reads it; [] when nothing does."""
    if gguf_type not in TYPES:
        return [f"GGUF type {gguf_type!r} is not one of {', '.join(TYPES)}"]
    try:
        family = family_layout(config)
    except Exception as e:  # UnsupportedFamily or GGUFError: the message names the type
        return [str(e)]
    out = []
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    if family.gguf.query_scale_head_dim and config.get("query_pre_attn_scalar", head_dim) != head_dim:
        out.append(f"query_pre_attn_scalar {config['query_pre_attn_scalar']} differs from head_dim {head_dim}; "
                   "llama.cpp scales queries by 1/sqrt(head_dim)")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    ropes = rope.values() if family.gguf.local_rope and "full_attention" in rope else [rope]
    for r in ropes:
        if r and r.get("rope_type", r.get("type", "default")) not in ("default", "linear"):
            out.append(f"RoPE type {r.get('rope_type', r.get('type'))!r} is not exported (default and linear are)")
    return out


def _rope(config: dict, family: Family) -> dict:
    """{key after "{arch}.": value} of the rotary embedding."""
    rope = config.get("rope_parameters") or {}
    full = rope.get("full_attention", rope) if family.gguf.local_rope else rope
    theta = full.get("rope_theta", config.get("rope_theta", 10000.0))
    out = {"rope.freq_base": float(theta)}
    scaling = config.get("rope_scaling") or full
    if scaling.get("rope_type", scaling.get("type")) == "linear":
        out["rope.scaling.type"] = "linear"
        out["rope.scaling.factor"] = float(scaling["factor"])
    if family.gguf.local_rope:
        local = rope.get("sliding_attention", {})
        out["rope.freq_base_swa"] = float(local.get("rope_theta", config.get("rope_local_base_freq", 10000.0)))
    return out


def _interleave_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's rotary row order: per head, rows (x0, x1, …, y0, y1, …) to (x0, y0, x1, y1, …)."""
    shape = w.shape
    return w.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def tensor_names(config: dict, family: Family, keys) -> list[tuple[str, str]]:
    """(HF name, GGUF name) of every tensor the file gets, in llama.cpp's order: embeddings, each layer's, final norm
    and head (left out when tied)."""
    names = [("model.embed_tokens.weight", "token_embd.weight")]
    by_matrix = {matrix: suffix for suffix, matrix in family.gguf.layer_tensors.items()}
    missing = [m for m in family.matrices if m not in by_matrix]
    if missing:
        raise GGUFError(f"the {family.gguf.arch} GGUF layout has no name for {', '.join(missing)}")
    for layer in range(config["num_hidden_layers"]):
        names += [(family.tensor_name(layer, m), f"blk.{layer}.{by_matrix[m]}") for m in family.matrices]
    names.append(("model.norm.weight", "output_norm.weight"))
    if not config.get("tie_word_embeddings", False) and "lm_head.weight" in keys:
        names.append(("lm_head.weight", "output.weight"))
    absent = [hf for hf, _ in names if hf not in keys]
    if absent:
        raise GGUFError(f"the model lacks {', '.join(absent[:4])}")
    return names


def gguf_tensor(w: np.ndarray, gguf_name: str, config: dict, family: Family) -> np.ndarray:
    """One HF tensor (float32) as llama.cpp's converter stores it."""
    if family.gguf.interleaved_qk and gguf_name.endswith(("attn_q.weight", "attn_q.bias")):
        w = _interleave_rows(w, config["num_attention_heads"])
    elif family.gguf.interleaved_qk and gguf_name.endswith(("attn_k.weight", "attn_k.bias")):
        w = _interleave_rows(w, config.get("num_key_value_heads", config["num_attention_heads"]))
    if family.gguf.norms_plus_one and gguf_name.endswith("norm.weight"):
        w = w + 1.0
    return np.ascontiguousarray(w, dtype=np.float32)


def stored_type(shape, gguf_type: str) -> str:
    """Vectors in float32 (llama.cpp's converter does the same); a matrix in ``gguf_type``, or float16 when its rows
    do not split into q8_0's blocks of 32."""
    if len(shape) < 2:
        return "f32"
    if gguf_type == "q8_0" and shape[-1] % Q8_BLOCK:
        return "f16"
    return gguf_type


def encode(w: np.ndarray, kind: str) -> np.ndarray:
    import gguf

    if kind == "f32":
        return w
    if kind == "f16":
        return w.astype(np.float16)
    return gguf.quants.quantize(w, _ggml(kind))


def _nbytes(shape, kind: str) -> int:
    n = int(np.prod(shape))
    return {"f32": 4 * n, "f16": 2 * n, "bf16": 2 * n, "q8_0": n // Q8_BLOCK * 34}[kind]


def _chat_template(model_dir: Path) -> str | None:
    if (model_dir / "chat_template.jinja").exists():
        return (model_dir / "chat_template.jinja").read_text()
    cfg_path = model_dir / "tokenizer_config.json"
    if cfg_path.exists():
        template = json.loads(cfg_path.read_text()).get("chat_template")
        if isinstance(template, str):
            return template
    return None


def _copy_tokenizer(writer, source_gguf: Path) -> None:
    """Every ``tokenizer.*`` key of the GGUF the base came from, as it is there."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(source_gguf))
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            sub = field.types[1]
            value = [field.parts[i].tobytes().decode("utf-8") if sub == GGUFValueType.STRING else field.parts[i][0].item()
                     for i in field.data]
            writer.add_key_value(field.name, value, vtype, sub_type=sub)
        elif vtype == GGUFValueType.STRING:
            writer.add_key_value(field.name, field.parts[-1].tobytes().decode("utf-8"), vtype)
        else:
            writer.add_key_value(field.name, field.parts[-1][0].item(), vtype)


def tokenizer_problems(model_dir) -> list[str]:
    """Whether the tokenizer of ``model_dir`` can be written from its tokenizer.json: a byte-level BPE vocabulary
    can; a SentencePiece one (Llama 2, Mistral, Gemma) needs its scores, which deepen does not convert."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.exists():
        return [f"{model_dir} has no tokenizer.json to write the GGUF's tokenizer from"]
    model = json.loads(path.read_text()).get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        return [f"the tokenizer of {model_dir} is {model.get('type')} "
                f"{'with byte fallback ' if model.get('byte_fallback') else ''}(a SentencePiece vocabulary): only "
                "byte-level BPE tokenizers are written from tokenizer.json; start from the base's GGUF file, whose "
                "tokenizer is copied as it is, or convert with llama.cpp's convert_hf_to_gguf.py"]
    return []


def _bpe_tokenizer(writer, model_dir: Path, config: dict) -> None:
    """A byte-level BPE vocabulary from tokenizer.json, as llama.cpp's "gpt2" tokenizer model reads it."""
    import gguf

    problems = tokenizer_problems(model_dir)
    if problems:
        raise GGUFError(problems[0])
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    model = tok["model"]
    vocab = dict(model["vocab"])
    added = {t["content"]: t for t in tok.get("added_tokens", [])}
    for content, t in added.items():
        vocab[content] = t["id"]
    size = max(config["vocab_size"], max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for content, i in vocab.items():
        tokens[i] = content
        special = added.get(content, {}).get("special", False)
        # an added token is a control token (<|im_start|>) when special, else one the user defined
        types[i] = (gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED) if content in added \
            else gguf.TokenType.NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(BPE_PRE.get(config["model_type"], "default"))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, adder in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                       ("pad_token_id", writer.add_pad_token_id)):
        value = config.get(key)
        if isinstance(value, list):
            value = value[0]
        if value is not None:
            adder(int(value))
    writer.add_add_bos_token(False)


def export_gguf(model_dir, out_path, gguf_type: str = "f16", tokenizer_gguf=None, name: str | None = None,
                license: str | None = None) -> dict:
    """Write ``model_dir`` (an HF model directory of a family with a GGUF layout) as the GGUF file ``out_path``, its
    matrices in ``gguf_type``; the tokenizer from ``tokenizer_gguf`` (the GGUF the base came from) when given, else
    from tokenizer.json; the chat template from the folder. Returns what was written."""
    import gguf

    from deepen.core.atomic import atomic_path
    from deepen.models.tensorio import CheckpointReader

    model_dir, out_path = Path(model_dir), Path(out_path)
    config = json.loads((model_dir / "config.json").read_text())
    problems = export_problems(config, gguf_type)
    if problems:
        raise GGUFError(f"{model_dir}: cannot be exported to GGUF: {'; '.join(problems)}")
    family = family_layout(config)
    arch = family.gguf.arch
    reader = CheckpointReader(model_dir)
    names = tensor_names(config, family, set(reader.keys()))
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    counts: dict[str, int] = {}
    with atomic_path(out_path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name or model_dir.name)
        writer.add_file_type(FILE_TYPE[gguf_type])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        if license:
            writer.add_license(license)
        for hf_key, key in {**_CONFIG_KEYS, **{k: v for k, v in family.gguf.config_keys.items()}}.items():
            value = config.get(hf_key)
            if value is None:
                continue
            full = f"{arch}.{key}"
            if isinstance(value, bool):
                writer.add_bool(full, value)
            elif isinstance(value, int):
                writer.add_uint32(full, value)
            else:
                writer.add_float32(full, float(value))
        writer.add_uint32(f"{arch}.attention.key_length", head_dim)
        writer.add_uint32(f"{arch}.attention.value_length", head_dim)
        writer.add_uint32(f"{arch}.rope.dimension_count", head_dim)
        writer.add_uint32(f"{arch}.vocab_size", int(config["vocab_size"]))
        for key, value in _rope(config, family).items():
            (writer.add_string if isinstance(value, str) else writer.add_float32)(f"{arch}.{key}", value)
        if tokenizer_gguf:
            _copy_tokenizer(writer, Path(tokenizer_gguf))
        else:
            _bpe_tokenizer(writer, model_dir, config)
        template = _chat_template(model_dir)
        if template and not tokenizer_gguf:
            writer.add_chat_template(template)
        kinds = {}
        for hf, g in names:
            shape = reader.shape(hf)
            kind = stored_type(shape, gguf_type)
            kinds[hf] = kind
            counts[kind] = counts.get(kind, 0) + 1
            raw = _ggml(kind)
            writer.add_tensor_info(g, shape, np.dtype(np.float32 if kind == "f32" else np.float16),
                                   _nbytes(shape, kind), raw_dtype=None if kind in ("f32", "f16") else raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for hf, g in names:
            w = reader.get(hf).float().numpy()
            writer.write_tensor_data(encode(gguf_tensor(w, g, config, family), kinds[hf]))
        writer.close()
    return {"file": str(out_path), "type": gguf_type, "architecture": arch, "tensors": len(names),
            "tensor_types": counts, "bytes": out_path.stat().st_size, "layers": config["num_hidden_layers"]}


def modelfile(gguf_name: str, chat_template: bool, stop: list[str] | None = None) -> str:
    """An ollama Modelfile for the GGUF file beside it. ollama reads the chat template from the GGUF itself (its
    ``tokenizer.chat_template``), so the Modelfile names the file and the sampling defaults only."""
    lines = [f"# ollama create NAME -f {gguf_name.rsplit('.', 1)[0]}.Modelfile   (run in this folder)",
             f"FROM ./{gguf_name}", "PARAMETER temperature 0"]
    lines += [f'PARAMETER stop "{s}"' for s in stop or []]
    if not chat_template:
        lines.append('TEMPLATE "{{ .Prompt }}"')  # a base model without a chat template continues the text as given
    return "\n".join(lines) + "\n"
