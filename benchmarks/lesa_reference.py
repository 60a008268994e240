"""LESA as the released notebook does it, beside deepen's stages, on the same base model.

The released procedure (yangyifei729/LESA, train_LESA.ipynb), written out here in our own code: the
concatenation [W_1 | … | W_L] in float32 and its full ``torch.linalg.svd``; the rows of every interior
triplet gathered into one tensor (X = [V_{l-1} | V_{l+1}], Y = V_l) and shuffled together by a DataLoader
(batch 64); the same 3-layer MLP; AdamW at 1e-3; (1-λ)·MSE + λ·(‖Ŷ‖ − ‖Y‖)², λ = 5e-4; 10 epochs; a new layer
between l and l+1 as (U·S) @ G([V_l, V_{l+1}]). deepen's stages: the streaming Gram SVD (svd.py) and the
predictor (predictor.py), on the same weights.

For each matrix type it prints
  - how far deepen's singular values are from the full SVD's (relative), and whether its V blocks agree up to sign;
  - for the new layers of a top-half placement: their norm against the base layers', the distance between the
    two implementations' layers against the distance between two seeds of the same implementation;
  - on held-out layers (each predicted by a fit without its triplet, in both implementations), the MSE of the
    predictor, of the neighbours' mean and of zeros.

    python benchmarks/lesa_reference.py --model results/base --workdir /tmp/lesa_ref --matrices gate_proj up_proj
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def released_svd(stack: torch.Tensor):
    """U, S and the per-layer blocks V_l from the full SVD of the concatenation along the input axis."""
    layers, _, d_in = stack.shape
    u, s, vt = torch.linalg.svd(torch.cat(list(stack), dim=1), full_matrices=False)
    return u, s, [vt[:, i * d_in : (i + 1) * d_in] for i in range(layers)]


def released_predictor(v: list[torch.Tensor], seed: int, epochs: int, withhold: int | None = None):
    """The notebook's training: every interior triplet's rows in one dataset, shuffled together."""
    from deepen.expand.lesa.predictor import LayerPredictor

    torch.manual_seed(seed)
    targets = [i for i in range(1, len(v) - 1) if i != withhold]
    x = torch.cat([torch.cat([v[i - 1], v[i + 1]], dim=1) for i in targets])
    y = torch.cat([v[i] for i in targets])
    model = LayerPredictor(v[0].shape[1], 256)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
    for _ in range(epochs):
        for bx, by in loader:
            out = model.net(bx)
            loss = (1 - 5e-4) * torch.mean((out - by) ** 2) + 5e-4 * (torch.norm(out) - torch.norm(by)) ** 2
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def new_layers(us: torch.Tensor, v: list[torch.Tensor], model) -> list[torch.Tensor]:
    L = len(v)
    with torch.no_grad():
        return [us @ model(v[l], v[l + 1]) for l in range(L // 2 - 1, L - 1)]


def heldout_mse(v: list[torch.Tensor], layer: int, model) -> dict:
    with torch.no_grad():
        pred = model(v[layer - 1], v[layer + 1])
    mse = lambda a: torch.mean((a - v[layer]) ** 2).item()  # noqa: E731
    return {"predictor": mse(pred), "mean_of_neighbours": mse(0.5 * (v[layer - 1] + v[layer + 1])),
            "zero": mse(torch.zeros_like(pred))}


def compare(model_dir: Path, work: Path, matrix: str, epochs: int, heldout: list[int]) -> dict:
    from deepen.expand.lesa.svd import svd_stage
    from deepen.expand.weights import extract_stage
    from deepen.expand.lesa.predictor import BlockSource, train_predictor
    from deepen.models.tensorio import CheckpointReader

    weights = work / f"{matrix}.safetensors"
    if not weights.exists():
        extract_stage(model_dir, matrix, weights)
    stack = CheckpointReader(weights).get("weights").float()
    t0 = time.time()
    u, s, v_ref = released_svd(stack)
    svd_seconds = time.time() - t0
    svd_stage(weights, work / f"{matrix}.svd.safetensors", work / f"{matrix}.svd.json")
    ours = CheckpointReader(work / f"{matrix}.svd.safetensors")
    s_ours, u_ours = ours.get("S"), ours.get("U")
    v_ours = [ours.get_block("V", l) for l in range(stack.shape[0])]
    top = min(64, len(s))
    sign = torch.sign((u[:, :top] * u_ours[:, :top]).sum(0))
    v_agree = min(torch.nn.functional.cosine_similarity(v_ref[l][:top], sign[:, None] * v_ours[l][:top], dim=1).min().item()
                  for l in range(len(v_ref)))
    cfg = {"hidden": 256, "lr": 1e-3, "batch_size": 64, "epochs": epochs, "norm_weight": 5e-4, "weight_decay": 0.01}
    source = BlockSource(work / f"{matrix}.svd.safetensors", "V")
    layers = {}
    for seed in (0, 1):
        layers[("released", seed)] = new_layers(u * s, v_ref, released_predictor(v_ref, seed, epochs))
        model, _ = train_predictor(source, {**cfg, "seed": seed}, log=lambda x: None)
        layers[("deepen", seed)] = new_layers(u_ours * s_ours, v_ours, model)

    def dist(a, b):
        return float(np.mean([torch.linalg.norm(x - y).item() / torch.linalg.norm(y).item()
                              for x, y in zip(layers[a], layers[b])]))

    base_norm = float(np.mean([torch.linalg.norm(w).item() for w in stack]))
    out = {
        "matrix": matrix, "shape": list(stack.shape), "full_svd_seconds": round(svd_seconds, 1),
        "singular_values_max_rel_diff": ((s_ours - s).abs() / s.clamp_min(1e-12)).max().item(),
        "v_blocks_min_cosine_top64": v_agree,
        "new_layer_norm": {k[0]: float(np.mean([torch.linalg.norm(w).item() for w in layers[k]])) for k in layers if k[1] == 0},
        "base_layer_norm": base_norm,
        "between_implementations": dist(("deepen", 0), ("released", 0)),
        "between_seeds_released": dist(("released", 1), ("released", 0)),
        "between_seeds_deepen": dist(("deepen", 1), ("deepen", 0)),
        "heldout": [],
    }
    for layer in heldout:
        model, _ = train_predictor(source, {**cfg, "seed": 0}, log=lambda x: None, withhold=layer)
        out["heldout"].append({"layer": layer, "released": heldout_mse(v_ref, layer, released_predictor(v_ref, 0, epochs, layer)),
                               "deepen": heldout_mse(v_ours, layer, model)})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="an HF model directory (e.g. results/base of config/smollm2.yaml)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--matrices", nargs="+", default=["gate_proj", "up_proj", "down_proj", "q_proj", "k_proj",
                                                      "v_proj", "o_proj"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--heldout", type=int, nargs="*", default=[12, 22])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for matrix in args.matrices:
        r = compare(Path(args.model), work, matrix, args.epochs, args.heldout)
        results.append(r)
        print(f"{matrix} {r['shape']}: S rel diff {r['singular_values_max_rel_diff']:.1e}, V cos (top 64) "
              f">= {r['v_blocks_min_cosine_top64']:.6f}; new-layer norm released {r['new_layer_norm']['released']:.1f}, "
              f"deepen {r['new_layer_norm']['deepen']:.1f}, base layers {r['base_layer_norm']:.1f}; relative distance "
              f"between implementations {r['between_implementations']:.3f}, between seeds: released "
              f"{r['between_seeds_released']:.3f}, deepen {r['between_seeds_deepen']:.3f}", flush=True)
        for h in r["heldout"]:
            print("  held-out layer {layer}: predictor MSE released {r:.3e}, deepen {d:.3e}; neighbours' mean {m:.3e}; "
                  "zeros {z:.3e}".format(layer=h["layer"], r=h["released"]["predictor"], d=h["deepen"]["predictor"],
                                         m=h["deepen"]["mean_of_neighbours"], z=h["deepen"]["zero"]), flush=True)
    (work / "lesa_reference.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
