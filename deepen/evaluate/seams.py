"""Seam diagnostics of an expanded model on the fixed val slice: how much each layer changes the residual stream
(the cosine similarity of the hidden state entering and leaving it: 1 is a layer that does nothing), and for each
added layer the val-loss change when that layer alone is skipped (0: the model does not use it; a rise: it does
work the rest relies on). Measured before and after CPT, they show which added layers learned to do something."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from tqdm import tqdm

from deepen.core.atomic import write_json
from deepen.core.device import evaluation_dtype, stage_device
from deepen.data.tokenizer import load_tokenizer
from deepen.data.tokens import open_tokens
from deepen.expand import plan as plans
from deepen.train.trainer import fixed_slice_loss


def decoder_layers(model) -> torch.nn.ModuleList:
    return model.model.layers


@contextlib.contextmanager
def skipped(layer: torch.nn.Module):
    """``layer`` passes its input through unchanged while the context is open."""

    def identity(module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = layer.register_forward_hook(identity, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def recorded_cosines(model):
    """While open, every forward pass adds to the list it yields, per decoder layer, the mean over tokens so far
    of cos(hidden state entering, hidden state leaving)."""
    layers = decoder_layers(model)
    sums = torch.zeros(len(layers), dtype=torch.float64)
    tokens = torch.zeros(len(layers), dtype=torch.float64)
    means: list[float] = []

    def recorder(index):
        def record(module, args, kwargs, output):
            entering = args[0] if args else kwargs["hidden_states"]
            leaving = output[0] if isinstance(output, tuple) else output
            cos = torch.nn.functional.cosine_similarity(entering.double(), leaving.double(), dim=-1)
            sums[index] += cos.sum().item()  # the model's device, whichever; the sums stay on the CPU
            tokens[index] += cos.numel()
        return record

    handles = [layer.register_forward_hook(recorder(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        yield means
    finally:
        for h in handles:
            h.remove()
        means[:] = (sums / tokens).tolist()


def _measured(model, positions, val_tokens: np.ndarray, seq_len: int, max_tokens: int, batch_size: int):
    """The whole model's loss on the slice, every layer's cosine (on the same pass), and for each of ``positions``
    the val loss without that layer minus the val loss with every layer."""
    model.eval()
    with recorded_cosines(model) as cosines:
        whole = fixed_slice_loss(model, val_tokens, seq_len, max_tokens, batch_size)
    deltas = {}
    for position in tqdm(positions, desc="skip each layer", leave=False):
        with skipped(decoder_layers(model)[position]):
            deltas[position] = fixed_slice_loss(model, val_tokens, seq_len, max_tokens, batch_size)[
                "val_loss"] - whole["val_loss"]
    return whole, cosines, deltas


def seam_diagnostics(model, plan: list[dict], val_tokens: np.ndarray, seq_len: int, max_tokens: int,
                     batch_size: int) -> dict:
    """Per layer of the expanded ``model`` (built by ``plan``): where it came from, its cosine; per added layer, the
    val loss without it minus the val loss with every layer."""
    added = [position for position, entry in enumerate(plan) if entry["from"] == "new"]
    whole, cosines, deltas = _measured(model, added, val_tokens, seq_len, max_tokens, batch_size)
    layers = []
    for position, entry in enumerate(plan):
        row = {"position": position, "added": position in deltas, "cosine": cosines[position]}
        if row["added"]:
            row["skip_loss_delta"] = deltas[position]
        else:
            row["base_layer"] = entry["layer"]
        layers.append(row)
    return {"val_loss": whole["val_loss"], "val_tokens": whole["val_tokens"], "layers": layers}


def layer_profile(model, val_tokens: np.ndarray, seq_len: int, max_tokens: int, batch_size: int) -> dict:
    """Per layer of a base ``model``: its cosine and the val-loss change when it alone is skipped; what an ``auto``
    placement ranks the seams by (deepen/expand/plan.py)."""
    count = len(decoder_layers(model))
    whole, cosines, deltas = _measured(model, range(count), val_tokens, seq_len, max_tokens, batch_size)
    return {"val_loss": whole["val_loss"], "val_tokens": whole["val_tokens"],
            "layers": [{"layer": i, "cosine": cosines[i], "skip_loss_delta": deltas[i]} for i in range(count)]}


def layer_profile_stage(model_dir, val_bin, cfg: dict, out_path, threads: int = 1, device: str = "auto") -> None:
    """The base's layer profile (above) on the seams' slice of the val split, on ``device``."""
    from deepen.models.modeling import load_causal_lm

    torch.set_num_threads(max(1, threads))
    on = stage_device(device)
    model = load_causal_lm(model_dir, on, evaluation_dtype(on))
    tokens = open_tokens(val_bin, load_tokenizer(model_dir))
    write_json({"model": str(model_dir), **layer_profile(model, tokens, cfg["seq_len"], cfg["eval_tokens"],
                                                         cfg["batch_size"])}, out_path)


def seams_stage(model_dir, plan_path, trained: dict, val_bin, cfg: dict, out_path, threads: int = 1,
                device: str = "auto") -> None:
    """Seam diagnostics (above) on the fixed val slice of an expanded model before CPT and, per freeze
    policy in ``trained`` ({freeze: CPT final model}), after it; on ``device`` (deepen.core.device)."""
    import torch

    from deepen.models.modeling import load_causal_lm

    torch.set_num_threads(max(1, threads))
    plan = plans.load(plan_path)["plan"]
    tokens = open_tokens(val_bin, load_tokenizer(model_dir))

    on = stage_device(device)

    def measure(path):
        model = load_causal_lm(path, on, evaluation_dtype(on))
        if len(plan) != model.config.num_hidden_layers:
            raise ValueError(f"{path}: {model.config.num_hidden_layers} layers, but its plan {plan_path} has "
                             f"{len(plan)}")
        return seam_diagnostics(model, plan, tokens, cfg["seq_len"], cfg["eval_tokens"], cfg["batch_size"])

    write_json({"model": str(model_dir), "before": measure(model_dir),
                "after": {freeze: measure(path) for freeze, path in trained.items()}}, out_path)
