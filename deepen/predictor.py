"""LESA's layer predictor: an MLP that maps the rows of two neighbouring layers' blocks to the rows of
the layer between them, trained on every interior triplet (l-1, l, l+1), one triplet held out.

The row source is either the SVD blocks V_l (LESA) or the raw weight rows W_l (the ``nosvd``
ablation). Rows are streamed one triplet at a time, never gathered into one sample matrix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from .tensorio import CheckpointReader, atomic_path


class LayerPredictor(nn.Module):
    def __init__(self, d_in: int, hidden: int = 256):
        super().__init__()
        self.d_in = d_in
        self.net = nn.Sequential(
            nn.Linear(2 * d_in, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, d_in),
        )

    def forward(self, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([lower, upper], dim=-1))


def lesa_loss(pred: torch.Tensor, target: torch.Tensor, norm_weight: float) -> torch.Tensor:
    """(1-λ)·MSE + λ·(‖pred‖_F − ‖target‖_F)², the norms over the minibatch."""
    mse = torch.mean((pred - target) ** 2)
    norm_gap = torch.linalg.norm(pred) - torch.linalg.norm(target)
    return (1 - norm_weight) * mse + norm_weight * norm_gap**2


class BlockSource:
    """Per-layer row blocks of one matrix type: ``V`` of an SVD file or ``stack`` of extracted weights."""

    def __init__(self, path, key: str):
        self.reader = CheckpointReader(path)
        self.key = key
        shape = self.reader.shape(key)
        self.num_layers, self.rows, self.d_in = shape

    def get(self, layer: int) -> torch.Tensor:
        return self.reader.get_block(self.key, layer).to(torch.float32)


def interior_layers(num_layers: int, val_layer: int | None) -> tuple[list[int], int]:
    interior = list(range(1, num_layers - 1))
    if len(interior) < 2:
        raise ValueError(f"LESA needs at least 4 layers to hold out a triplet; the model has {num_layers}")
    val = val_layer if val_layer is not None else interior[len(interior) // 2]
    if val not in interior:
        raise ValueError(f"predictor.val_layer {val} is not an interior layer 1..{num_layers - 2}")
    return [l for l in interior if l != val], val


def _eval(model, source: BlockSource, layer: int) -> dict:
    lower, mid, upper = source.get(layer - 1), source.get(layer), source.get(layer + 1)
    with torch.no_grad():
        pred = model(lower, upper)
    mse = lambda a: torch.mean((a - mid) ** 2).item()  # noqa: E731
    return {
        "predictor": mse(pred),
        "mean_of_neighbours": mse(0.5 * (lower + upper)),
        "copy_lower": mse(lower),
        "copy_upper": mse(upper),
        # predicting zeros: the floor any useful predictor must beat
        "zero": mse(torch.zeros_like(mid)),
    }


def train_predictor(source: BlockSource, cfg: dict, log: Callable[[str], None] = print) -> tuple[LayerPredictor, dict]:
    """cfg: hidden, lr, batch_size, epochs, norm_weight, val_layer, seed, weight_decay."""
    torch.manual_seed(cfg["seed"])
    model = LayerPredictor(source.d_in, cfg["hidden"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.01))
    train_layers, val_layer = interior_layers(source.num_layers, cfg.get("val_layer"))
    gen = torch.Generator().manual_seed(cfg["seed"])
    history = {"epoch": [], "train_loss": [], "val_loss": [], "val_mse": []}
    val_rows = (source.get(val_layer - 1), source.get(val_layer), source.get(val_layer + 1))
    for epoch in tqdm(range(cfg["epochs"]), desc="predictor epochs", leave=False):
        model.train()
        total, count = 0.0, 0
        for t in torch.randperm(len(train_layers), generator=gen).tolist():
            layer = train_layers[t]
            lower, mid, upper = source.get(layer - 1), source.get(layer), source.get(layer + 1)
            order = torch.randperm(source.rows, generator=gen)
            for start in range(0, source.rows, cfg["batch_size"]):
                idx = order[start : start + cfg["batch_size"]]
                loss = lesa_loss(model(lower[idx], upper[idx]), mid[idx], cfg["norm_weight"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                count += len(idx)
        model.eval()
        with torch.no_grad():
            pred = model(val_rows[0], val_rows[2])
            val_loss = lesa_loss(pred, val_rows[1], cfg["norm_weight"]).item()
            val_mse = torch.mean((pred - val_rows[1]) ** 2).item()
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(total / count)
        history["val_loss"].append(val_loss)
        history["val_mse"].append(val_mse)
        log(f"epoch {epoch + 1}: train {total / count:.4e} val {val_loss:.4e} (mse {val_mse:.4e})")
    report = {"val_layer": val_layer, "train_layers": train_layers, **history,
              "val_mse_against_baselines": _eval(model, source, val_layer), "config": cfg}
    return model, report


def save_predictor(model: LayerPredictor, report: dict, pt_path, json_path) -> None:
    with atomic_path(pt_path) as tmp:
        torch.save({"d_in": model.d_in, "hidden": model.net[0].out_features, "state_dict": model.state_dict()}, tmp)
    with atomic_path(json_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))


def load_predictor(pt_path) -> LayerPredictor:
    blob = torch.load(pt_path, map_location="cpu", weights_only=True)
    model = LayerPredictor(blob["d_in"], blob["hidden"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()
