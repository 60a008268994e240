"""Weight extraction: one stacked ``[L, ...]`` safetensors file per matrix type, read tensor by tensor."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from .arch import Architecture
from .tensorio import CheckpointReader, StreamingWriter


def read_model_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: base_model must be an HF model directory")
    return json.loads(path.read_text())


def extract_matrix(reader: CheckpointReader, arch: Architecture, num_layers: int, matrix: str, out_path) -> None:
    """Stack one matrix type over layers; only one layer's tensor is in memory at a time."""
    names = [arch.tensor_name(layer, matrix) for layer in range(num_layers)]
    missing = [n for n in names if n not in reader]
    if missing:
        raise KeyError(f"checkpoint lacks {missing[0]} (matrix type {matrix!r})")
    shape, dtype = reader.shape(names[0]), reader.dtype(names[0])
    for n in names[1:]:
        if reader.shape(n) != shape:
            raise ValueError(f"{n}: shape {reader.shape(n)} differs from layer 0's {shape}")
    spec = [("stack", [num_layers, *shape], dtype)]

    with StreamingWriter(out_path, spec, metadata={"matrix": matrix, "layers": num_layers}) as writer:
        # Writing a stack slice by slice: declare the whole stack, then append layer bytes in order.
        writer.write_parts("stack", (reader.get(n) for n in tqdm(names, desc=matrix, leave=False)))


class WeightStacks:
    """Read one layer of one matrix type from the extracted stacks without loading the stack."""

    def __init__(self, directory: str | Path, matrices: list[str]):
        self.directory = Path(directory)
        self.readers = {m: CheckpointReader(self.directory / f"{m}.safetensors") for m in matrices}
        self.matrices = list(matrices)
        self.num_layers = self.readers[self.matrices[0]].shape("stack")[0]

    def get(self, matrix: str, layer: int):
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} outside 0..{self.num_layers - 1}")
        return self.readers[matrix].get_block("stack", layer)

    def shape(self, matrix: str) -> list[int]:
        return self.readers[matrix].shape("stack")[1:]

    def dtype(self, matrix: str):
        return self.readers[matrix].dtype("stack")
