"""OpT-DeUS: align layer A's neurons to layer B's with optimal transport (POT), then fuse.

Alignment is done on weight rows: cost = Euclidean distance between rows, uniform marginals, solved
exactly (an assignment) or entropically (POT's ``ot.sinkhorn``). A POT plan P has row sums 1/n; the aligned
rows are ``n · Pᵀ A`` (for an exact plan, a permutation of A's rows). ``as_released`` applies
``Pᵀ A`` unscaled, as the reference implementation does, which shrinks the aligned weights by 1/n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class AlignmentError(RuntimeError):
    pass


@dataclass(frozen=True)
class OTSettings:
    solver: str = "emd"  # or "sinkhorn"
    reg: float = 0.06  # sinkhorn's entropic regularisation, on the raw Euclidean cost as in the reference
    as_released: bool = False


def euclidean_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances of the rows, through one matrix product (as ``ot.dist`` computes them):
    scipy's cdist loops in C without BLAS and took 24× as long on an 8192-neuron MLP."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def euclidean_cost_on(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """:func:`euclidean_cost` of float64 tensors on their device (a GPU's product), returned to the CPU."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return torch.sqrt(torch.clamp(sq, min=0.0)).cpu().numpy()


def transport_plan(a_feats: torch.Tensor, b_feats: torch.Tensor, settings: OTSettings) -> torch.Tensor:
    """The (n × n) plan between A's and B's feature rows, with POT's 1/n row sums, on their device.

    Exact OT between uniform marginals of the same size is an assignment problem: its optimal plan is a
    permutation scaled by 1/n, which scipy's linear_sum_assignment finds (the optimum ``ot.emd`` finds, about
    twice as fast, and without POT). The entropic plan comes from POT's log-domain sinkhorn. The cost matrix
    (float64) is computed where the rows are (numpy's product on the CPU, torch's on a GPU); the solvers run on
    the CPU."""
    n = a_feats.shape[0]
    if b_feats.shape[0] != n:
        raise AlignmentError(f"cannot align {n} rows to {b_feats.shape[0]} rows")
    device = a_feats.device
    if device.type == "cpu":
        cost = euclidean_cost(a_feats.detach().double().numpy(), b_feats.detach().double().numpy())
    else:
        cost = euclidean_cost_on(a_feats.detach().double(), b_feats.detach().double())
    if settings.solver == "emd":
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        plan = np.zeros((n, n))
        plan[rows, cols] = 1.0 / n
    elif settings.solver == "sinkhorn":
        import ot

        marg = np.full(n, 1.0 / n)
        # The reference applies reg to the raw cost; the log-domain solver keeps small reg stable.
        plan = ot.sinkhorn(marg, marg, cost, reg=settings.reg, method="sinkhorn_log", numItermax=100_000)
    else:
        raise AlignmentError(f"unknown OT solver {settings.solver!r}; use emd or sinkhorn")
    return torch.from_numpy(np.asarray(plan)).to(device)


def mapping(plan: torch.Tensor, settings: OTSettings) -> torch.Tensor:
    """The operator T with aligned = T @ A: n·Pᵀ (a permutation for an exact plan), or Pᵀ as released."""
    n = plan.shape[0]
    return plan.T if settings.as_released else n * plan.T


def as_permutation(plan: torch.Tensor) -> torch.Tensor:
    """For an exact plan: perm[j] = the row of A matched to B's row j."""
    return plan.argmax(dim=0)


def _heads(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a projection grouped by head: [heads, head_dim · d_in]."""
    return w.reshape(heads, -1)


def align_attention_heads(A: dict, B: dict, n_heads: int, n_kv: int, settings: OTSettings) -> dict:
    """Permute A's heads to match B's: whole KV groups first, then query heads inside each group.

    Moving whole heads keeps each head's RoPE dimension pairs intact, and moving a KV group together with
    its query heads keeps grouped-query attention intact, so the attention output is unchanged.
    """
    rep = n_heads // n_kv
    hd = A["q_proj"].shape[0] // n_heads

    def group_feats(L):
        q = L["q_proj"].reshape(n_kv, rep * hd, -1).reshape(n_kv, -1)
        return torch.cat([q, _heads(L["k_proj"], n_kv), _heads(L["v_proj"], n_kv)], dim=1)

    group_plan = transport_plan(group_feats(A), group_feats(B), settings)
    T_group = mapping(group_plan, settings)  # [n_kv, n_kv]
    q_heads_A = _heads(A["q_proj"], n_heads).reshape(n_kv, rep, -1)
    o_heads_A = A["o_proj"].T.reshape(n_heads, -1).reshape(n_kv, rep, -1)  # o's columns, by query head
    q_heads_B = _heads(B["q_proj"], n_heads).reshape(n_kv, rep, -1)
    # Groups of A moved onto B's group positions (mixtures for an entropic plan).
    q_grouped = torch.einsum("ij,jrf->irf", T_group, q_heads_A)
    o_grouped = torch.einsum("ij,jrf->irf", T_group, o_heads_A)
    q_out, o_out, T_heads = [], [], []
    for g in range(n_kv):
        if rep == 1:
            T_head = torch.eye(1, dtype=T_group.dtype, device=T_group.device)
        else:
            T_head = mapping(transport_plan(q_grouped[g], q_heads_B[g], settings), settings)
        T_heads.append(T_head)
        q_out.append(T_head @ q_grouped[g])
        o_out.append(T_head @ o_grouped[g])
    out = dict(A)
    out["q_proj"] = torch.cat(q_out).reshape(A["q_proj"].shape)
    out["o_proj"] = torch.cat(o_out).reshape(n_heads * hd, -1).T.contiguous()
    out["k_proj"] = (T_group @ _heads(A["k_proj"], n_kv)).reshape(A["k_proj"].shape)
    out["v_proj"] = (T_group @ _heads(A["v_proj"], n_kv)).reshape(A["v_proj"].shape)
    if "q_bias" in A:  # a bias entry belongs to its row: the same moves
        q_bias = torch.einsum("ij,jrf->irf", T_group, A["q_bias"].reshape(n_kv, rep, hd))
        out["q_bias"] = torch.cat([T_heads[g] @ q_bias[g] for g in range(n_kv)]).reshape(-1)
        out["k_bias"] = (T_group @ A["k_bias"].reshape(n_kv, -1)).reshape(-1)
        out["v_bias"] = (T_group @ A["v_bias"].reshape(n_kv, -1)).reshape(-1)
    return out


def align_attention_rows(A: dict, B: dict, settings: OTSettings) -> dict:
    """The reference's variant: q, k and v rows aligned each on its own. o_proj's columns follow q's plan,
    except ``as_released``: the released code leaves them where they were, so the residual map is then
    solved on o_proj's own rows."""
    out = dict(A)
    for m in ("q_proj", "k_proj", "v_proj"):
        T = mapping(transport_plan(A[m], B[m], settings), settings)
        out[m] = T @ A[m]
        bias = m[0] + "_bias"
        if bias in A:
            out[bias] = T @ A[bias]
        if m == "q_proj" and not settings.as_released:
            out["o_proj"] = A["o_proj"] @ T.T
    return out


def residual_map(A: dict, B: dict, settings: OTSettings) -> torch.Tensor:
    """T_o from the rows of o_proj: how A's residual-stream outputs map onto B's."""
    return mapping(transport_plan(A["o_proj"], B["o_proj"], settings), settings)


def neuron_features(L: dict) -> torch.Tensor:
    """One row per MLP neuron: its gate row, its up row and its down column together."""
    return torch.cat([L["gate_proj"], L["up_proj"], L["down_proj"].T], dim=1)


def align_mlp_joint(A: dict, B: dict, settings: OTSettings) -> dict:
    """One plan for the intermediate neurons, applied to gate rows, up rows and down columns alike."""
    T = mapping(transport_plan(neuron_features(A), neuron_features(B), settings), settings)
    out = dict(A)
    out["gate_proj"] = T @ A["gate_proj"]
    out["up_proj"] = T @ A["up_proj"]
    out["down_proj"] = A["down_proj"] @ T.T
    return out


def align_mlp_separate(A: dict, B: dict, settings: OTSettings) -> dict:
    """The reference's variant: separate plans for gate rows, up rows and down rows."""
    out = dict(A)
    for m in ("gate_proj", "up_proj", "down_proj"):
        out[m] = mapping(transport_plan(A[m], B[m], settings), settings) @ A[m]
    return out


def fuse_layers(A: dict, B: dict, n_heads: int, n_kv: int, settings: OTSettings,
                mlp_input_norm: str = "post_attention_layernorm", output_norms: tuple[str, ...] = (),
                attention: str = "heads", mlp: str = "joint") -> dict:
    """Align A to B in the specified block order, then average. Returns float32 tensors.

    Biases of q, k and v (Qwen2) move with their rows. ``mlp_input_norm``, the norm in front of the MLP,
    is mapped half-way with the residual stream; ``output_norms`` (Gemma 2's norms of the attention and
    MLP outputs) scale the channels o_proj and down_proj write, so they move with those rows. Every other
    vector (input norms, Qwen3's per-head q/k norms, which whole-head moves leave valid) is averaged as
    it is. Computes on the device of A's and B's tensors, in float64."""
    A = {k: v.double() for k, v in A.items()}
    B = {k: v.double() for k, v in B.items()}
    # 1. attention
    if attention == "heads":
        A = align_attention_heads(A, B, n_heads, n_kv, settings)
    elif attention == "rows":
        A = align_attention_rows(A, B, settings)
    else:
        raise AlignmentError(f"unknown attention alignment {attention!r}; use heads or rows")
    # 2. the residual-stream map from o_proj's rows; post-attention norm half-way between T_o and identity
    T_o = residual_map(A, B, settings)
    A["o_proj"] = T_o @ A["o_proj"]
    identity = torch.eye(T_o.shape[0], dtype=T_o.dtype, device=T_o.device)
    A[mlp_input_norm] = (0.5 * T_o + 0.5 * identity) @ A[mlp_input_norm]
    for norm in output_norms:
        A[norm] = T_o @ A[norm]
    # 3. MLP inputs read the residual stream: map gate/up columns with T_o before aligning neurons;
    #    down's rows write the residual stream like o's rows (the separate variant aligns them on their own)
    A["gate_proj"] = A["gate_proj"] @ T_o.T
    A["up_proj"] = A["up_proj"] @ T_o.T
    if mlp == "joint":
        A["down_proj"] = T_o @ A["down_proj"]
    # 4. the intermediate neurons
    if mlp == "joint":
        A = align_mlp_joint(A, B, settings)
    elif mlp == "separate":
        A = align_mlp_separate(A, B, settings)
    else:
        raise AlignmentError(f"unknown MLP alignment {mlp!r}; use joint or separate")
    return {k: (0.5 * (A[k] + B[k])).float() for k in B}
