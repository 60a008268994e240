"""LESA's SVD of one matrix type across layers, without materialising the concatenation.

W = [W_1 | … | W_L] (d_out × L·d_in) has the thin SVD W = U diag(S) Vᵀ. Its Gram matrix
W Wᵀ = Σ_l W_l W_lᵀ (d_out × d_out) accumulates layer by layer; its eigenvectors are U. Each layer's
block is V_l = diag(1/S) Uᵀ W_l (r × d_in), so W_l = U diag(S) V_l.

Everything runs in float32, where a CPU is several times faster than in float64. The Gram route
squares the condition number, so the Gram's eigenvalues are not used as S: S_i² = Σ_l ‖(Uᵀ W_l)_i‖²
is the Rayleigh quotient of each eigenvector against the weights themselves, accurate to the
eigenvectors' error squared. S is therefore known only after the projection pass, which writes the
unscaled blocks Uᵀ W_l and then scales them by 1/S in place before the file is published.

On the CPU both passes compute in numpy, whose products run on OpenBLAS (as scipy's ssyrk and eigh do),
not in torch. Torch's OpenMP workers keep spinning for a while after each operation, and on a machine with
as many cores as BLAS threads that halves the speed of an OpenBLAS call that follows a torch one (on 2
cores, k_proj's Gram pass took 0.27 s after torch conversions and 0.14 s after numpy ones).

On a GPU (``device``, deepen.core.device) the Gram matrix accumulates and is decomposed in float64, where a GPU
is fast enough that the squared condition number costs nothing, and the projection runs in float32 with
TF32 off; the singular values agree with the CPU route's within 1e-6 relative (on SmolLM2: tests/test_smollm2.py,
benchmarks/svd_routes.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from scipy.linalg.blas import ssyrk
from tqdm import tqdm

from deepen.core.atomic import atomic_path
from deepen.expand.weights import WEIGHTS_KEY
from deepen.models.tensorio import CheckpointReader, StreamingWriter

# Float32 products carry rounding of ~1e-7·sqrt(d_out) of the largest singular value into every
# direction: singular values below 1e-5 of the largest are that noise. Their V rows are set to zero.
RELATIVE_FLOOR = 1e-5
ERROR_PROBES = 32


def float32_array(block: torch.Tensor) -> np.ndarray:
    """``block`` as a new float32 numpy array, converted by numpy, not by torch (see the module doc)."""
    if block.dtype == torch.bfloat16:
        # A bfloat16 is the upper half of a float32's bits.
        bits = block.view(torch.int16).numpy().view(np.uint16).astype(np.uint32)
        bits <<= 16
        return bits.view(np.float32)
    return block.numpy().astype(np.float32)


def gram_eigenvectors(get_layer, num_layers: int) -> np.ndarray:
    """U (d_out × r): the Gram matrix's eigenvectors, largest eigenvalue first, r = its possible rank.

    ``get_layer(l)`` returns layer l's matrix as a float32 numpy array."""
    gram = None
    d_in = None
    for layer in tqdm(range(num_layers), desc="gram", leave=False):
        w = get_layer(layer)
        d_in = w.shape[1]
        if gram is None:
            gram = np.zeros((w.shape[0], w.shape[0]), dtype=np.float32, order="F")
        # A symmetric rank-k update fills one triangle: half the multiplies of w @ w.T. w.T is w's own
        # memory read column-major, so nothing is copied; trans=1 makes it (w.T)ᵀ w.T = w wᵀ.
        gram = ssyrk(1.0, w.T, beta=1.0, c=gram, trans=1, lower=0, overwrite_c=1)
    # The divide-and-conquer driver is the fastest when every eigenvector is wanted.
    eigvals, eigvecs = scipy.linalg.eigh(gram, lower=False, driver="evd", overwrite_a=True, check_finite=False)
    del gram
    rank = min(eigvals.shape[0], num_layers * d_in)
    order = np.argsort(eigvals)[::-1][:rank].copy()
    return np.ascontiguousarray(eigvecs[:, order])


def gram_eigenvectors_float64(get_layer, num_layers: int, device) -> np.ndarray:
    """:func:`gram_eigenvectors` in float64 on ``device`` (the GPU route): U as a float32 numpy array."""
    gram, d_in = None, None
    for layer in tqdm(range(num_layers), desc="gram", leave=False):
        w = torch.from_numpy(get_layer(layer)).to(device, torch.float64)
        d_in = w.shape[1]
        if gram is None:
            gram = torch.zeros((w.shape[0], w.shape[0]), dtype=torch.float64, device=device)
        gram.addmm_(w, w.T)
    eigvals, eigvecs = torch.linalg.eigh(gram)
    del gram
    rank = min(eigvals.shape[0], num_layers * d_in)
    order = torch.argsort(eigvals, descending=True)[:rank]
    return np.ascontiguousarray(eigvecs[:, order].to(torch.float32).cpu().numpy())


def projector(u_t: np.ndarray, device):
    """``w -> Uᵀ w`` (float32): numpy's product on the CPU, torch's on a GPU with TF32 off (a float32 product)."""
    if device.type == "cpu":
        return lambda w: u_t @ w
    u_t_on = torch.from_numpy(u_t).to(device)

    def project(w: np.ndarray) -> np.ndarray:
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            return (u_t_on @ torch.from_numpy(w).to(device)).cpu().numpy()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    return project


def inverse_singular_values(s: np.ndarray) -> np.ndarray:
    keep = s > RELATIVE_FLOOR * s.max()
    inv = np.zeros_like(s)
    inv[keep] = 1.0 / s[keep]
    return inv


def row_energy(p: np.ndarray) -> np.ndarray:
    """Squared row norms, in float64: numpy sums a contiguous axis pairwise (relative error ~1e-7)."""
    return np.square(p).sum(axis=1).astype(np.float64)


def svd_stage(weights_path, out_path, report_path, device="auto", float64_gram: bool | None = None) -> dict:
    """Write U, S and the stacked blocks V [L, r, d_in] (float32) and the reconstruction error json. ``device``
    (resources.device: auto, cpu or cuda, as deepen.core.device decides; or a torch device) is where the Gram matrix
    and the projections compute; ``float64_gram`` (default: on a GPU) takes the float64 route for the Gram matrix,
    which a test also runs on the CPU."""
    from deepen.core.device import gram_in_float64, stage_device

    device = stage_device(device) if isinstance(device, str) else torch.device(device)
    float64_gram = gram_in_float64(device) if float64_gram is None else float64_gram
    reader = CheckpointReader(weights_path)
    num_layers, d_out, d_in = reader.shape(WEIGHTS_KEY)

    def get_layer(layer: int) -> np.ndarray:
        return float32_array(reader.get_block(WEIGHTS_KEY, layer))

    u = gram_eigenvectors_float64(get_layer, num_layers, device) if float64_gram else gram_eigenvectors(get_layer,
                                                                                                        num_layers)
    rank = u.shape[1]
    u_t = np.ascontiguousarray(u.T)
    project = projector(u_t, device)
    # The relative error ||W_l - U S V_l|| / ||W_l|| is estimated on random probe vectors (E||A x||² =
    # ||A||_F² for x ~ N(0, I)): a full U S V_l product would cost as much as the projection itself.
    probes = np.random.default_rng(0).standard_normal((d_in, ERROR_PROBES), dtype=np.float32)
    w_probes = []
    energy = np.zeros(rank, dtype=np.float64)

    def projections():
        for layer in tqdm(range(num_layers), desc="V blocks", leave=False):
            w = get_layer(layer)
            p = project(w)
            np.add(energy, row_energy(p), out=energy)
            w_probes.append(w @ probes)
            yield torch.from_numpy(p)

    specs = [("U", [d_out, rank], torch.float32), ("V", [num_layers, rank, d_in], torch.float32),
             ("S", [rank], torch.float32)]
    with StreamingWriter(out_path, specs, metadata={"layers": num_layers}) as writer:
        writer.write("U", torch.from_numpy(u))
        writer.write_parts("V", projections())
        s = np.sqrt(energy)
        inv = inverse_singular_values(s).astype(np.float32)
        us = u * s.astype(np.float32)[None, :]
        v_all = writer.written("V").numpy()
        errors = []
        for layer in tqdm(range(num_layers), desc="scale V", leave=False):
            v = v_all[layer]
            v *= inv[:, None]
            # Checked on the block as stored.
            err = np.linalg.norm(us @ (v @ probes) - w_probes[layer])
            errors.append(float(err / max(np.linalg.norm(w_probes[layer]), 1e-30)))
        del v_all, v
        writer.write("S", torch.from_numpy(s.astype(np.float32)))
    report = {
        "layers": num_layers, "d_out": d_out, "d_in": d_in, "rank": rank,
        "guarded_singular_values": int((inv == 0).sum()),
        "max_relative_reconstruction_error": max(errors),
        "relative_reconstruction_error": errors,
        "singular_values_top": s[:8].tolist(),
        "device": device.type, "gram": "float64" if float64_gram else "float32",
    }
    with atomic_path(report_path) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2))
    return report
