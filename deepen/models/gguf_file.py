"""Reading GGUF files (llama.cpp's format): metadata, the tensor index, and tensors one at a time.

The header is parsed here with ``struct`` and the tensors are memory-mapped, so a multi-GB file costs
what one tensor costs. Every size the header declares is checked against the file before anything is
read, so a truncated or corrupt file stops with its path and what is wrong. Plain and the simple block
types (F32, F16, BF16, F64, Q8_0, Q4_0, Q4_1) are dequantised here with numpy; other block types go
through the ``gguf`` package, when it is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import struct

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# value type code -> struct format of a scalar; 8 (string) and 9 (array) are handled apart
SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                  12: "<d"}
NUMPY_SCALARS = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
                 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
STRING, ARRAY = 8, 9

# ggml tensor type code -> (name, elements per block, bytes per block): the format's fixed facts
TENSOR_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
}


class GGUFError(ValueError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order: rows first (GGUF lists the fastest axis first)
    type_code: int
    offset: int  # absolute, in the file
    nbytes: int

    @property
    def type_name(self) -> str:
        return TENSOR_TYPES[self.type_code][0]


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict
    tensors: dict[str, TensorInfo]
    # lengths of the array values that were skipped rather than decoded (token lists, merges)
    array_lengths: dict[str, int]

    def get(self, key: str, default=None):
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        arch = self.metadata.get("general.architecture")
        if not isinstance(arch, str):
            raise GGUFError(f"{self.path}: no general.architecture in the metadata")
        return arch


class _Cursor:
    def __init__(self, path: Path, buf: memoryview):
        self.path, self.buf, self.pos = path, buf, 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.buf):
            raise GGUFError(f"{self.path}: truncated: {what} needs bytes {self.pos}..{self.pos + n} but the file "
                            f"has {len(self.buf)}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.scalar("<Q", what)
        raw = self.take(n, what)
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"{self.path}: {what} is not UTF-8 text (byte {self.pos - n}): the file is corrupt") from None


# Arrays longer than this are not decoded at parse time (a vocabulary, its merges): only their length is kept.
DECODE_ARRAY_LIMIT = 4096


def _value(cur: _Cursor, vtype: int, key: str, decode_arrays: bool):
    if vtype in SCALAR_FORMATS:
        return cur.scalar(SCALAR_FORMATS[vtype], f"the value of {key!r}")
    if vtype == STRING:
        return cur.string(f"the value of {key!r}")
    if vtype == ARRAY:
        item_type = cur.scalar("<I", f"the array type of {key!r}")
        count = cur.scalar("<Q", f"the array length of {key!r}")
        if item_type in NUMPY_SCALARS:
            size = np.dtype(NUMPY_SCALARS[item_type]).itemsize
            raw = cur.take(count * size, f"the {count} items of {key!r}")
            return np.frombuffer(raw, dtype=NUMPY_SCALARS[item_type]).tolist() if decode_arrays or count <= DECODE_ARRAY_LIMIT else count
        if item_type == STRING:
            if decode_arrays or count <= DECODE_ARRAY_LIMIT:
                return [cur.string(f"item {i} of {key!r}") for i in range(count)]
            for i in range(count):
                n = cur.scalar("<Q", f"item {i} of {key!r}")
                cur.take(n, f"item {i} of {key!r}")
            return count
        raise GGUFError(f"{cur.path}: array {key!r} has item type {item_type}, which GGUF does not define (corrupt file?)")
    raise GGUFError(f"{cur.path}: metadata key {key!r} has value type {vtype}, which GGUF does not define "
                    "(corrupt file?)")


def read_header(path, decode_arrays: bool = False) -> GGUFHeader:
    """Parse a GGUF file's metadata and tensor index and check the tensors' extents against the file.

    Long arrays (the tokenizer's vocabulary and merges) are skipped unless ``decode_arrays``; their
    lengths are in ``array_lengths``."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise GGUFError(f"{path}: not a GGUF file (it does not start with the bytes 'GGUF')")
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(path, memoryview(mm))
    cur.take(4, "the magic")
    version = cur.scalar("<I", "the version")
    if version not in (2, 3):
        raise GGUFError(f"{path}: GGUF version {version}; versions 2 and 3 are supported")
    n_tensors = cur.scalar("<Q", "the tensor count")
    n_kv = cur.scalar("<Q", "the metadata count")
    if n_tensors > size or n_kv > size:
        raise GGUFError(f"{path}: header declares {n_tensors} tensors and {n_kv} metadata keys in a {size}-byte "
                        "file: corrupt")
    metadata, lengths = {}, {}
    for i in range(n_kv):
        key = cur.string(f"metadata key {i}")
        vtype = cur.scalar("<I", f"the value type of {key!r}")
        value = _value(cur, vtype, key, decode_arrays)
        if vtype == ARRAY and isinstance(value, int):
            lengths[key] = value
        else:
            metadata[key] = value
            if isinstance(value, list):
                lengths[key] = len(value)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment % 8:
        raise GGUFError(f"{path}: general.alignment {alignment!r} is not a positive multiple of 8")
    raw = []
    for i in range(n_tensors):
        name = cur.string(f"the name of tensor {i}")
        n_dims = cur.scalar("<I", f"the rank of tensor {name!r}")
        if n_dims > 8:
            raise GGUFError(f"{path}: tensor {name!r} has rank {n_dims}: corrupt")
        dims = [cur.scalar("<Q", f"the shape of tensor {name!r}") for _ in range(n_dims)]
        type_code = cur.scalar("<I", f"the type of tensor {name!r}")
        offset = cur.scalar("<Q", f"the offset of tensor {name!r}")
        raw.append((name, dims, type_code, offset))
    data_start = -(-cur.pos // alignment) * alignment
    tensors = {}
    for name, dims, type_code, offset in raw:
        if type_code not in TENSOR_TYPES:
            raise GGUFError(f"{path}: tensor {name!r} has type code {type_code}, which this reader does not know")
        type_name, block, block_bytes = TENSOR_TYPES[type_code]
        count = int(np.prod(dims, dtype=np.int64)) if dims else 1
        if dims and dims[0] % block:
            raise GGUFError(f"{path}: tensor {name!r} ({type_name}) has rows of {dims[0]} values, not a multiple of "
                            f"its block of {block}")
        nbytes = count // block * block_bytes
        start = data_start + offset
        if start + nbytes > size:
            raise GGUFError(f"{path}: truncated: tensor {name!r} needs bytes {start}..{start + nbytes} but the file "
                            f"has {size}")
        if name in tensors:
            raise GGUFError(f"{path}: tensor {name!r} is listed twice")
        tensors[name] = TensorInfo(name, tuple(reversed(dims)), type_code, start, nbytes)
    return GGUFHeader(path, version, metadata, tensors, lengths)


def _f16(raw: np.ndarray) -> np.ndarray:
    """Rows of 2 bytes as float32."""
    return raw.copy().view(np.float16).astype(np.float32)


def _dequantize_blocks(raw: np.ndarray, type_name: str) -> np.ndarray:
    """``raw``: [blocks, bytes per block] uint8 -> [blocks, 32] float32."""
    d = _f16(raw[:, :2])
    if type_name == "Q8_0":
        return d * raw[:, 2:].view(np.int8).astype(np.float32)
    if type_name == "Q4_0":
        qs = raw[:, 2:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
        return d * q.astype(np.float32)
    if type_name == "Q4_1":
        m = _f16(raw[:, 2:4])
        qs = raw[:, 4:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1)
        return d * q.astype(np.float32) + m
    raise KeyError(type_name)


SIMPLE_BLOCK_TYPES = ("Q8_0", "Q4_0", "Q4_1")


def read_tensor(header: GGUFHeader, name: str) -> np.ndarray:
    """One tensor, dequantised to float32 (float64 stays float64), in numpy order (rows first)."""
    info = header.tensors[name]
    mm = np.memmap(header.path, dtype=np.uint8, mode="r", offset=info.offset, shape=(info.nbytes,))
    kind = info.type_name
    if kind in ("F32", "F64", "F16"):
        dtype = {"F32": np.float32, "F64": np.float64, "F16": np.float16}[kind]
        out = np.frombuffer(mm, dtype=dtype).reshape(info.shape)
        return out.astype(np.float32) if kind == "F16" else np.array(out)
    if kind == "BF16":
        bits = np.frombuffer(mm, dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(info.shape)
    if kind in SIMPLE_BLOCK_TYPES:
        _, block, block_bytes = TENSOR_TYPES[info.type_code]
        values = _dequantize_blocks(np.asarray(mm).reshape(-1, block_bytes), kind)
        return values.reshape(info.shape)
    try:
        from gguf import GGMLQuantizationType, dequantize
    except ImportError:
        raise GGUFError(f"{header.path}: tensor {name!r} is {kind}; dequantising that type needs the gguf package "
                        "(pip install gguf)") from None
    rows = np.asarray(mm).reshape(*info.shape[:-1], -1)
    return np.asarray(dequantize(rows, GGMLQuantizationType(info.type_code)), dtype=np.float32).reshape(info.shape)
