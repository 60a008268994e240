"""Lazy tensor IO: read checkpoints tensor by tensor, write safetensors as tensors arrive.

Nothing here holds a whole model in memory. A reader keeps a ``safe_open`` handle per shard and
returns one tensor at a time; a writer lays out the safetensors header from the tensors' shapes
up front and then appends each tensor's bytes as the caller produces it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import struct
import torch
from safetensors import safe_open

from deepen.core.atomic import atomic_path

DTYPE_CODES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class CheckpointReader:
    """Lazy access to the tensors of a safetensors file or an HF model directory."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.is_dir():
            index = path / INDEX_NAME
            if index.exists():
                weight_map = json.loads(index.read_text())["weight_map"]
                self.files = {name: path / shard for name, shard in weight_map.items()}
            elif (path / SINGLE_NAME).exists():
                self.files = None
                self._single = path / SINGLE_NAME
            else:
                raise FileNotFoundError(f"{path}: no {SINGLE_NAME} or {INDEX_NAME}")
        else:
            self.files = None
            self._single = path
        self._handles: dict[Path, object] = {}
        self._headers: dict[Path, tuple[int, dict]] = {}
        if self.files is None:
            if not self._single.exists():
                raise FileNotFoundError(f"checkpoint file missing: {self._single}")
            self.files = {name: self._single for name in self._handle(self._single).keys()}
        missing = sorted({str(f) for f in self.files.values() if not f.exists()})
        if missing:
            raise FileNotFoundError(f"checkpoint shard missing: {', '.join(missing)}")

    def _handle(self, file: Path):
        if file not in self._handles:
            self._check_size(file)
            try:
                self._handles[file] = safe_open(str(file), framework="pt")
            except Exception as e:  # safetensors raises its own error types
                raise OSError(f"cannot read safetensors file {file}: {e}") from e
        return self._handles[file]

    @staticmethod
    def _check_size(file: Path) -> None:
        """A file cut short (an interrupted copy or download) holds fewer bytes than its header declares."""
        size = file.stat().st_size
        try:
            with open(file, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length)) if 8 + length <= size else None
        except (struct.error, json.JSONDecodeError, UnicodeDecodeError):
            header = None
        if header is None:
            raise OSError(f"{file}: not a safetensors file, or truncated inside its header ({size} bytes)")
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + length + end > size:
            raise OSError(f"{file}: truncated: its header declares {8 + length + end} bytes, the file has {size}")

    def keys(self) -> list[str]:
        return list(self.files)

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def get(self, name: str) -> torch.Tensor:
        return self._handle(self.files[name]).get_tensor(name)

    def get_slice(self, name: str):
        return self._handle(self.files[name]).get_slice(name)

    def shape(self, name: str) -> list[int]:
        return list(self.get_slice(name).get_shape())

    def dtype(self, name: str) -> torch.dtype:
        return CODE_DTYPES[self.get_slice(name).get_dtype()]

    def _header_entry(self, name: str) -> tuple[Path, int, dict]:
        file = self.files[name]
        if file not in self._headers:
            with open(file, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                self._headers[file] = (8 + length, json.loads(f.read(length)))
        data_start, header = self._headers[file]
        return file, data_start, header[name]

    def byte_range(self, name: str) -> tuple[Path, int, int]:
        """(file, offset, length) of the tensor's raw bytes, for copying it without decoding."""
        file, data_start, entry = self._header_entry(name)
        begin, end = entry["data_offsets"]
        return file, data_start + begin, end - begin

    def get_block(self, name: str, index: int) -> torch.Tensor:
        """Entry ``index`` along the tensor's first axis (one layer of a stack), read into fresh memory.

        Reading with a plain file read, not through the memory map, keeps pages of the file from
        accumulating in the process as it walks a multi-GB stack layer by layer.
        """
        file, data_start, entry = self._header_entry(name)
        shape, dtype = entry["shape"], CODE_DTYPES[entry["dtype"]]
        if not shape or not 0 <= index < shape[0]:
            raise IndexError(f"{name}: block {index} outside a tensor of shape {shape}")
        begin, end = entry["data_offsets"]
        size = (end - begin) // shape[0]
        buffer = bytearray(size)
        with open(file, "rb", buffering=0) as f:
            f.seek(data_start + begin + index * size)
            view, done = memoryview(buffer), 0
            while done < size:
                n = f.readinto(view[done:])
                if not n:
                    raise EOFError(f"{file}: truncated in tensor {name}")
                done += n
        if size == 0:
            return torch.empty(shape[1:], dtype=dtype)
        return torch.frombuffer(buffer, dtype=dtype).reshape(shape[1:])

    def metadata(self) -> dict[str, str]:
        first = next(iter(self.files.values()))
        return self._handle(first).metadata() or {}


def tensor_nbytes(shape: Iterable[int], dtype: torch.dtype) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n * torch.empty((), dtype=dtype).element_size()


def same_bytes(a: tuple[Path, int, int], b: tuple[Path, int, int], window: int = 4096) -> bool:
    """Whether two (file, offset, length) ranges have the same length and the same bytes in three windows
    (start, middle, end): enough to tell one tensor from another — a misplaced layer, a wrong offset — at a
    cost independent of the tensor's size, where a full comparison would read every byte twice more."""
    (path_a, off_a, len_a), (path_b, off_b, len_b) = a, b
    if len_a != len_b:
        return False
    starts = sorted({0, max(0, len_a // 2 - window // 2), max(0, len_a - window)})
    with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
        for start in starts:
            n = min(window, len_a - start)
            fa.seek(off_a + start)
            fb.seek(off_b + start)
            if fa.read(n) != fb.read(n):
                return False
    return True


def copy_range(src_fd: int, dst_fd: int, offset: int, length: int, chunk: int = 64 * 1024**2) -> None:
    """Append ``length`` bytes of ``src_fd`` from ``offset`` to ``dst_fd`` at its current position."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src_fd, dst_fd, min(chunk, length - done), offset + done)
            if n == 0:
                raise EOFError(f"source ended {length - done} bytes early")
            done += n
        return
    except (AttributeError, OSError):  # no copy_file_range here, or not across these file systems
        pass
    while done < length:
        data = os.pread(src_fd, min(chunk, length - done), offset + done)
        if not data:
            raise EOFError(f"source ended {length - done} bytes early")
        view = memoryview(data)
        while view:
            view = view[os.write(dst_fd, view):]
        done += len(data)


class StreamingWriter:
    """Write one safetensors file whose tensors are declared first and produced one by one.

    ``specs`` is an ordered list of (name, shape, dtype). ``write(name, tensor)`` must be called in
    that order. The file appears at ``path`` only after ``close()`` with every tensor written.
    """

    def __init__(self, path, specs: list[tuple[str, list[int], torch.dtype]], metadata=None):
        self.path = Path(path)
        self.specs = list(specs)
        header: dict[str, object] = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        offset = 0
        for name, shape, dtype in self.specs:
            size = tensor_nbytes(shape, dtype)
            header[name] = {"dtype": DTYPE_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._file = open(self._tmp, "wb")
        self._file.write(struct.pack("<Q", len(raw)))
        self._file.write(raw)
        self._header_bytes = len(raw)
        self._next = 0
        self.nbytes = offset

    def write(self, name: str, tensor: torch.Tensor) -> None:
        want_name, want_shape, want_dtype = self.specs[self._next]
        if name != want_name:
            raise ValueError(f"expected tensor {want_name!r} next, got {name!r}")
        if list(tensor.shape) != list(want_shape) or tensor.dtype != want_dtype:
            raise ValueError(
                f"{name}: declared {want_dtype} {list(want_shape)}, got {tensor.dtype} {list(tensor.shape)}"
            )
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        self._file.write(memoryview(data))
        self._next += 1

    def copy_bytes(self, name: str, source: Path, offset: int, length: int) -> None:
        """Write the declared tensor ``name`` from ``length`` raw bytes of ``source`` at ``offset``.

        The bytes move file to file inside the kernel (copy_file_range) where the file system allows,
        so a tensor that is carried over unchanged never passes through Python memory.
        """
        want_name, want_shape, want_dtype = self.specs[self._next]
        if name != want_name:
            raise ValueError(f"expected tensor {want_name!r} next, got {name!r}")
        if length != tensor_nbytes(want_shape, want_dtype):
            raise ValueError(f"{name}: declared {tensor_nbytes(want_shape, want_dtype)} bytes, source has {length}")
        self._file.flush()
        with open(source, "rb") as src:
            copy_range(src.fileno(), self._file.fileno(), offset, length)
        self._file.seek(0, os.SEEK_END)
        self._next += 1

    def write_parts(self, name: str, parts: Iterable[torch.Tensor]) -> None:
        """Write the declared tensor ``name`` as consecutive slices along its first axis."""
        want_name, want_shape, want_dtype = self.specs[self._next]
        if name != want_name:
            raise ValueError(f"expected tensor {want_name!r} next, got {name!r}")
        rows = 0
        for part in parts:
            if list(part.shape) != list(want_shape[1:]) or part.dtype != want_dtype:
                raise ValueError(f"{name}: slice {part.dtype} {list(part.shape)} does not fit {want_dtype} {want_shape}")
            self._file.write(memoryview(part.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
            rows += 1
        if rows != want_shape[0]:
            raise ValueError(f"{name}: {rows} slices written, {want_shape[0]} declared")
        self._next += 1

    def written(self, name: str) -> torch.Tensor:
        """The already written tensor ``name``, memory-mapped writable, for a pass that must revise it once
        a later result is known; changes land in the file before ``close()`` publishes it."""
        index = [spec[0] for spec in self.specs[: self._next]].index(name)
        _, shape, dtype = self.specs[index]
        offset = 8 + self._header_bytes + sum(tensor_nbytes(s, d) for _, s, d in self.specs[:index])
        self._file.flush()
        return torch.from_numpy(np.memmap(self._tmp, dtype=NUMPY_DTYPES[dtype], mode="r+", offset=offset,
                                          shape=tuple(shape)))

    def close(self) -> None:
        self._file.close()
        if self._next != len(self.specs):
            self._ctx.__exit__(RuntimeError, None, None)
            raise RuntimeError(f"{self.path}: {len(self.specs) - self._next} declared tensors were never written")
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self._file.close()
        try:
            self._ctx.__exit__(RuntimeError, None, None)
        except RuntimeError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def write_tensors(path, tensors: Iterator[tuple[str, torch.Tensor]] | dict, specs=None, metadata=None) -> None:
    """Write tensors to ``path``; with ``specs`` the tensors may be a lazy iterator."""
    if isinstance(tensors, dict):
        specs = [(k, list(v.shape), v.dtype) for k, v in tensors.items()]
        tensors = iter(tensors.items())
    with StreamingWriter(path, specs, metadata) as writer:
        for name, tensor in tensors:
            writer.write(name, tensor)


def shard(sizes: list[int], max_bytes: int) -> list[list[int]]:
    """Consecutive groups of tensor indices, each at most ``max_bytes`` (a larger tensor stands alone)."""
    groups, current, total = [], [], 0
    for i, size in enumerate(sizes):
        if current and total + size > max_bytes:
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    if current:
        groups.append(current)
    return groups


def write_sharded(out_dir, specs: list[tuple[str, list[int], torch.dtype]],
                  put: Callable[[StreamingWriter, str], None], max_shard_bytes: int, desc: str = "",
                  single_file: bool = False) -> None:
    """Write the tensors ``specs`` declares, in order, into the folder ``out_dir`` as an HF checkpoint: shards of at
    most ``max_shard_bytes`` and their index. ``put(writer, name)`` writes tensor ``name`` (``write`` or
    ``copy_bytes``). With ``single_file``, a checkpoint that fits one shard is model.safetensors, without an index."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    groups = shard([tensor_nbytes(s, d) for _, s, d in specs], max_shard_bytes)
    weight_map, total = {}, 0
    progress = tqdm(total=len(specs), desc=desc, leave=False)
    for k, group in enumerate(groups):
        fname = SINGLE_NAME if single_file and len(groups) == 1 else f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
        with StreamingWriter(out_dir / fname, [specs[i] for i in group], metadata={"format": "pt"}) as writer:
            for i in group:
                put(writer, specs[i][0])
                weight_map[specs[i][0]] = fname
                progress.update()
        total += writer.nbytes
    progress.close()
    if not (single_file and len(groups) == 1):
        (out_dir / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                     indent=1))
