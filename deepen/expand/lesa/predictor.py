"""LESA's layer predictor: an MLP that maps the rows of two neighbouring layers' blocks to the rows of
the layer between them.

The predictor that generates layers trains on every interior triplet (l-1, l, l+1), and each minibatch
draws its rows from all triplets at once, as the released code does (it shuffles the rows of every
triplet together). How well a layer can be predicted is measured apart, by leave-one-out fits that
withhold one triplet each (:func:`heldout_fit`); the generating predictor never misses a layer.

The row source is either the SVD blocks V_l (LESA) or the raw weight rows W_l (the ``nosvd``
ablation). Rows are gathered from the memory-mapped file minibatch by minibatch, never collected into
one sample matrix (gate_proj of an 8B model would be ~14 GB of samples).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from deepen.core.atomic import atomic_path, write_json
from deepen.core.device import stage_device
from deepen.core.schema import schema, section_defaults
from deepen.models.tensorio import CheckpointReader


@dataclass(frozen=True)
class PredictorSettings:
    """What a predictor trains with, typed and complete (config/schema.yaml's predictor section says what each does):
    built once from the section, over the schema's defaults, and the run's seed."""

    hidden: int
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    norm_weight: float
    seed: int

    @classmethod
    def from_config(cls, section: dict) -> PredictorSettings:
        merged = {**section_defaults("predictor"), "seed": schema()["properties"]["seed"]["default"], **section}
        return cls(**{f.name: merged[f.name] for f in fields(cls)})


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
    """Per-layer row blocks of one matrix type, memory-mapped: ``V`` of an SVD file or ``weights`` of an
    extracted file."""

    def __init__(self, path, key: str):
        self.reader = CheckpointReader(path)
        self.key = key
        shape = self.reader.shape(key)
        self.num_layers, self.rows, self.d_in = shape
        file, offset, _ = self.reader.byte_range(key)
        self._bfloat16 = self.reader.dtype(key) == torch.bfloat16
        np_dtype = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.uint16}[self.reader.dtype(key)]
        self._map = np.memmap(file, dtype=np_dtype, mode="r", offset=offset, shape=tuple(shape))

    def get(self, layer: int) -> torch.Tensor:
        return self.reader.get_block(self.key, layer).to(torch.float32)

    def row_scales(self) -> torch.Tensor:
        """How much each row counts in the weight matrix it makes: S for rows of V (W = U diag(S) V, U orthonormal),
        1 for raw weight rows."""
        if self.key == "V" and "S" in self.reader:
            return self.reader.get("S").to(torch.float32)
        return torch.ones(self.rows)

    def gather(self, layers: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        """Row ``rows[i]`` of layer ``layers[i]`` for every i: [n, d_in] float32."""
        picked = self._map[layers, rows]
        if self._bfloat16:  # a bfloat16 is the upper half of a float32's bits
            picked = (picked.astype(np.uint32) << 16).view(np.float32)
        return torch.from_numpy(np.ascontiguousarray(picked, dtype=np.float32))


def interior_layers(num_layers: int) -> list[int]:
    """Layers with a neighbour on each side: the targets of the triplets."""
    interior = list(range(1, num_layers - 1))
    if len(interior) < 2:
        raise ValueError(f"LESA needs at least 4 layers (two interior triplets); the model has {num_layers}")
    return interior


def heldout_layers(num_layers: int, layers: list[int] | None) -> list[int]:
    """The layers the leave-one-out fits withhold: ``layers``, or the middle interior layer."""
    interior = interior_layers(num_layers)
    chosen = list(layers) if layers else [interior[len(interior) // 2]]
    bad = [l for l in chosen if l not in interior]
    if bad:
        raise ValueError(f"predictor.heldout_layers: {bad} are not interior layers 1..{num_layers - 2}")
    return chosen


def trivial_predictions(lower: torch.Tensor, upper: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"mean_of_neighbours": 0.5 * (lower + upper), "copy_lower": lower, "copy_upper": upper,
            # predicting zeros: the floor any useful predictor must beat
            "zero": torch.zeros_like(lower)}


def _eval(model, source: BlockSource, layer: int, device) -> tuple[dict, dict]:
    """The held-out layer's MSE of the predictor and of the trivial predictors, and the two sums that give the
    factor ``a`` minimising the weight-space error of ``a`` × the prediction (shrink_factor)."""
    lower, mid, upper = (source.get(l).to(device) for l in (layer - 1, layer, layer + 1))
    with torch.no_grad():
        pred = model(lower, upper)
    mse = lambda a: torch.mean((a - mid) ** 2).item()  # noqa: E731
    weights = source.row_scales().to(device)[:, None] ** 2
    shrink = {"pred_dot_true": float((weights * pred * mid).sum()), "pred_sq": float((weights * pred * pred).sum())}
    return {"predictor": mse(pred), **{k: mse(v) for k, v in trivial_predictions(lower, upper).items()}}, shrink


def shrink_factor(fits: list[dict]) -> float:
    """The factor in [0, 1] that minimises the held-out layers' squared error (in weight space) of the scaled
    prediction, over all ``fits`` together: 0 is zero-init, 1 the prediction as it is (LESA as published)."""
    dot = sum(f["shrink"]["pred_dot_true"] for f in fits)
    sq = sum(f["shrink"]["pred_sq"] for f in fits)
    return min(1.0, max(0.0, dot / sq)) if sq > 0 else 0.0


def train_predictor(source: BlockSource, cfg: dict, log: Callable[[str], None] = print,
                    withhold: int | None = None, device=None) -> tuple[LayerPredictor, dict]:
    """Train on the rows of every interior triplet (but the one whose middle layer is ``withhold``), all
    triplets' rows shuffled together each epoch. cfg: the predictor section with the run's seed
    (:class:`PredictorSettings`), recorded in the report as given. With ``withhold``, the report has that layer's MSE after every epoch. On ``device`` (default
    the CPU; deepen.core.device), in float32; the initial weights and the minibatch order are drawn on the CPU, the same
    on every device. The model comes back on the CPU."""
    settings = PredictorSettings.from_config(cfg)
    device = torch.device("cpu") if device is None else torch.device(device)
    torch.manual_seed(settings.seed)
    model = LayerPredictor(source.d_in, settings.hidden).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    targets = np.array([l for l in interior_layers(source.num_layers) if l != withhold])
    gen = torch.Generator().manual_seed(settings.seed)
    samples = len(targets) * source.rows
    history = {"epoch": [], "train_loss": [], "heldout_mse": []}
    held = tuple(source.get(l).to(device) for l in (withhold - 1, withhold, withhold + 1)) if withhold else None
    for epoch in tqdm(range(settings.epochs), desc="predictor epochs", leave=False):
        model.train()
        total = 0.0
        order = torch.randperm(samples, generator=gen).numpy()
        for start in range(0, samples, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            layers, rows = targets[idx // source.rows], idx % source.rows
            lower, mid, upper = (source.gather(layers + d, rows).to(device) for d in (-1, 0, 1))
            loss = lesa_loss(model(lower, upper), mid, settings.norm_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(total / samples)
        line = f"epoch {epoch + 1}: train {total / samples:.4e}"
        if held:
            model.eval()
            with torch.no_grad():
                history["heldout_mse"].append(torch.mean((model(held[0], held[2]) - held[1]) ** 2).item())
            line += f" held-out layer {withhold} mse {history['heldout_mse'][-1]:.4e}"
        log(line)
    model.eval()
    report = {"train_layers": targets.tolist(), **history, "config": cfg}
    if withhold:
        against, shrink = _eval(model, source, withhold, device)
        report.update(heldout_layer=withhold, heldout_against_baselines=against, heldout_shrink=shrink)
    else:
        del report["heldout_mse"]
    return model.cpu(), report


def heldout_fit(source: BlockSource, cfg: dict, layers: list[int] | None, log: Callable[[str], None] = print,
                device=None) -> dict:
    """Leave-one-out fits: for each held-out layer a predictor trained without its triplet, scored on it against
    the trivial predictors (on ``device``, as train_predictor)."""
    fits = []
    for layer in heldout_layers(source.num_layers, layers):
        _, report = train_predictor(source, cfg, log, withhold=layer, device=device)
        fits.append({"layer": layer, "heldout_mse": report["heldout_mse"], "train_loss": report["train_loss"],
                     "against_baselines": report["heldout_against_baselines"], "shrink": report["heldout_shrink"]})
    return {"fits": fits, "shrink_factor": shrink_factor(fits), "config": cfg}


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


def predictor_stage(source_path, key: str, cfg: dict, pt_path, json_path, threads=1, device: str = "auto") -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    model, report = train_predictor(BlockSource(source_path, key), cfg, device=stage_device(device))
    save_predictor(model, report, pt_path, json_path)


def predictor_heldout_stage(source_path, key: str, cfg: dict, layers: list[int] | None, json_path, threads=1,
                            device: str = "auto") -> None:
    """Leave-one-out fits of LESA's predictor on one matrix type: how well each held-out layer is predicted."""
    import torch

    torch.set_num_threads(max(1, threads))
    write_json(heldout_fit(BlockSource(source_path, key), cfg, layers, device=stage_device(device)), json_path)
