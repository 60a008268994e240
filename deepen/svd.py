"""LESA's SVD of one matrix type across layers, without materialising the concatenation.

W = [W_1 | … | W_L] (d_out × L·d_in) has the thin SVD W = U diag(S) Vᵀ. Its Gram matrix
W Wᵀ = Σ_l W_l W_lᵀ (d_out × d_out) accumulates layer by layer in float64; the eigendecomposition
gives U and S², and each layer's block is V_l = diag(1/S) Uᵀ W_l (r × d_in), so W_l = U diag(S) V_l.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from scipy.linalg.blas import dsyrk
from tqdm import tqdm

from .tensorio import CheckpointReader, StreamingWriter, atomic_path

# The Gram route squares the condition number: eigenvalues carry noise of ~1e-14 of the largest, so
# singular values below 1e-6 of the largest are noise. Their V rows are set to zero.
RELATIVE_FLOOR = 1e-6
ERROR_PROBES = 32


def gram_svd(get_layer, num_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """U (d_out × r) and S (r) from the Gram matrix of the layers' concatenation, in float64."""
    gram = None
    d_in = None
    for layer in tqdm(range(num_layers), desc="gram", leave=False):
        w = get_layer(layer).to(torch.float64).numpy()
        d_in = w.shape[1]
        if gram is None:
            gram = np.zeros((w.shape[0], w.shape[0]), order="F")
        # A symmetric rank-k update fills one triangle: half the multiplies of w @ w.T. w.T is w's own
        # memory read column-major, so nothing is copied; trans=1 makes it (w.T)ᵀ w.T = w wᵀ.
        gram = dsyrk(1.0, w.T, beta=1.0, c=gram, trans=1, lower=0, overwrite_c=1)
    # Column-major upper triangle (rows i <= j of gram[i, j]) is the upper triangle torch reads.
    eigvals, eigvecs = torch.linalg.eigh(torch.from_numpy(gram), UPLO="U")
    del gram
    order = torch.argsort(eigvals, descending=True)
    rank = min(eigvals.shape[0], num_layers * d_in)
    order = order[:rank]
    s = eigvals[order].clamp_min(0).sqrt()
    return eigvecs[:, order], s


def inverse_singular_values(s: torch.Tensor) -> torch.Tensor:
    keep = s > RELATIVE_FLOOR * s.max()
    inv = torch.zeros_like(s)
    inv[keep] = 1.0 / s[keep]
    return inv


def svd_stage(weights_path, out_path, report_path) -> dict:
    """Write U, S and the stacked blocks V [L, r, d_in] (float32) and the reconstruction error json."""
    reader = CheckpointReader(weights_path)
    num_layers, d_out, d_in = reader.shape("stack")
    def get_layer(layer: int) -> torch.Tensor:
        return reader.get_block("stack", layer)

    u, s = gram_svd(get_layer, num_layers)
    inv = inverse_singular_values(s)
    rank = s.shape[0]
    # The Gram matrix needs float64 (it squares the condition number); projecting each layer onto U does
    # not, and float32 matmuls are several times faster on a CPU. Errors are measured on what is stored.
    proj = (inv[:, None] * u.T).to(torch.float32)  # diag(1/S) Uᵀ
    us = (u * s[None, :]).to(torch.float32)
    errors = []
    # The relative error ||W_l - U S V_l|| / ||W_l|| is estimated on random probe vectors (E||A x||² =
    # ||A||_F² for x ~ N(0, I)): a full U S V_l product would cost as much as the projection itself.
    probes = torch.randn(d_in, ERROR_PROBES, generator=torch.Generator().manual_seed(0))
    specs = [("U", [d_out, rank], torch.float32), ("S", [rank], torch.float32),
             ("V", [num_layers, rank, d_in], torch.float32)]

    def blocks():
        for layer in tqdm(range(num_layers), desc="V blocks", leave=False):
            w32 = get_layer(layer).to(torch.float32)
            v = proj @ w32
            w_probes = w32 @ probes
            err = torch.linalg.norm(us @ (v @ probes) - w_probes) / torch.linalg.norm(w_probes).clamp_min(1e-30)
            errors.append(err.item())
            yield v

    with StreamingWriter(out_path, specs, metadata={"layers": num_layers}) as writer:
        writer.write("U", u.to(torch.float32).contiguous())
        writer.write("S", s.to(torch.float32).contiguous())
        writer.write_parts("V", blocks())
    report = {
        "layers": num_layers, "d_out": d_out, "d_in": d_in, "rank": rank,
        "guarded_singular_values": int((inv == 0).sum()),
        "max_relative_reconstruction_error": max(errors),
        "relative_reconstruction_error": errors,
        "singular_values_top": s[:8].tolist(),
    }
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))
    return report
