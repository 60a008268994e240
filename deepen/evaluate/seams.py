"""Seam diagnostics of an expanded model on the fixed val slice: how much each layer changes the residual stream
(the cosine similarity of the hidden state entering and leaving it: 1 is a layer that does nothing), and for each
added layer the val-loss change when that layer alone is skipped (0: the model does not use it; a rise: it does
work the rest relies on). Measured before and after CPT, they show which added layers learned to do something."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

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


def seam_diagnostics(model, plan: list[dict], val_tokens: np.ndarray, seq_len: int, max_tokens: int,
                     batch_size: int) -> dict:
    """Per layer of the expanded ``model`` (built by ``plan``): where it came from, its cosine; per added layer, the
    val loss without it minus the val loss with every layer."""
    model.eval()
    with recorded_cosines(model) as cosines:  # on the same pass as the whole model's loss
        whole = fixed_slice_loss(model, val_tokens, seq_len, max_tokens, batch_size)
    layers = []
    for position, entry in enumerate(plan):
        row = {"position": position, "added": entry["from"] == "new", "cosine": cosines[position]}
        if row["added"]:
            with skipped(decoder_layers(model)[position]):
                row["skip_loss_delta"] = fixed_slice_loss(model, val_tokens, seq_len, max_tokens, batch_size)[
                    "val_loss"] - whole["val_loss"]
        else:
            row["base_layer"] = entry["layer"]
        layers.append(row)
    return {"val_loss": whole["val_loss"], "val_tokens": whole["val_tokens"], "layers": layers}

