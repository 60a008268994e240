"""Weight extraction: per matrix type, one safetensors file holding every layer's tensor in order, ``[L, ...]``
under the name ``weights``; read one layer at a time."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from deepen.models.families import Family, family_for
from deepen.models.tensorio import CheckpointReader, StreamingWriter

# the tensor of an extracted file: one matrix type, every layer
WEIGHTS_KEY = "weights"


def extract_matrix(reader: CheckpointReader, arch: Family, num_layers: int, matrix: str, out_path) -> None:
    """One matrix type of every layer into one ``[L, ...]`` tensor; only one layer's tensor is in memory at a time."""
    names = [arch.tensor_name(layer, matrix) for layer in range(num_layers)]
    missing = [n for n in names if n not in reader]
    if missing:
        raise KeyError(f"checkpoint lacks {missing[0]} (matrix type {matrix!r})")
    shape, dtype = reader.shape(names[0]), reader.dtype(names[0])
    for n in names[1:]:
        if reader.shape(n) != shape:
            raise ValueError(f"{n}: shape {reader.shape(n)} differs from layer 0's {shape}")
    spec = [(WEIGHTS_KEY, [num_layers, *shape], dtype)]

    with StreamingWriter(out_path, spec, metadata={"matrix": matrix, "layers": num_layers}) as writer:
        # Layer by layer: the whole [L, ...] tensor declared, then each layer's bytes appended in order.
        writer.write_parts(WEIGHTS_KEY, (reader.get(n) for n in tqdm(names, desc=matrix, leave=False)))


class LayerWeights:
    """The extracted files of every matrix type: one layer of one matrix type at a time, never a whole file."""

    def __init__(self, directory: str | Path, matrices: list[str]):
        self.directory = Path(directory)
        self.readers = {m: CheckpointReader(self.directory / f"{m}.safetensors") for m in matrices}
        self.matrices = list(matrices)
        self.num_layers = self.readers[self.matrices[0]].shape(WEIGHTS_KEY)[0]

    def get(self, matrix: str, layer: int):
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} outside 0..{self.num_layers - 1}")
        return self.readers[matrix].get_block(WEIGHTS_KEY, layer)

    def shape(self, matrix: str) -> list[int]:
        return self.readers[matrix].shape(WEIGHTS_KEY)[1:]

    def dtype(self, matrix: str):
        return self.readers[matrix].dtype(WEIGHTS_KEY)


def extract_stage(base_dir, matrix: str, out_path) -> None:
    from deepen.models.model_dir import read_model_config
    from deepen.models.model_dir import check_model_dir

    config = read_model_config(base_dir)
    arch = family_for(config.get("model_type", ""))
    extract_matrix(check_model_dir(base_dir, arch, config), arch, config["num_hidden_layers"], matrix, out_path)
