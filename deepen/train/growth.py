"""Model growth by stacking (Gstack): pretrain a small model of L/g layers, stack it g times into the
L-layer target, and continue training; compared with training the target from scratch on the same
total FLOPs.

The growth operators are expansion methods (deepen/expand/growth_operators.py); here are the budgets, the speedup
and the timing guideline.

FLOPs: a run of s steps of T tokens on a model costs s·T·f, with f the training FLOPs per token of
``deepen.models.flops`` (6·N plus the attention core, 12·layers·seq·d). The scratch run's cost is the budget;
the grown run gets the steps that the budget leaves after the small model's cost, rounded to the
nearest step, so the two spend the same FLOPs to within half an optimizer step of the target.

The growth-timing guideline (command line: ``python -m deepen.train.growth timing``) is the fit of Du et al.
2024 (see GUIDELINE).
"""

from __future__ import annotations

import argparse
import math
import sys

from deepen.expand.growth_operators import GrowthError
from deepen.models.flops import training_flops_per_token


GUIDELINE = """\
Growth timing of Gstack, from Du et al. 2024, "Stacking Your Transformers: A Closer Look at Model Growth
for Efficient LLM Pre-Training" (arXiv 2405.15319), fitted on their Llama-style runs:

    log10 d = 0.88 * log10 N + 163.27 / log10 C - 5.74,   growth factor g = 4

d: tokens to train the small model (L/g layers) before stacking it; N: the target model's parameters;
C: the target's training FLOPs, C = 6 * N * D for D training tokens. The paper's experiments grow
models of 410M to 7B parameters; the fit is an extrapolation outside them, and this command refuses
N outside [1e7, 1e12] and C outside [1e17, 1e27], where it was never meant to hold.
"""
PARAMS_RANGE = (1e7, 1e12)
FLOPS_RANGE = (1e17, 1e27)
PAPER_PARAMS_RANGE = (4.1e8, 7e9)


def guideline_tokens(params: float, flops: float) -> float:
    """d, the tokens to train the small model before growing (Du et al. 2024's fit)."""
    for name, value, (lo, hi) in (("params", params, PARAMS_RANGE), ("flops", flops, FLOPS_RANGE)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise GrowthError(f"{name} must be a positive number, got {value!r}")
        if not lo <= value <= hi:
            raise GrowthError(f"{name} = {value:.3g} is outside [{lo:.0e}, {hi:.0e}], the range where the "
                              "guideline can be applied at all")
    return 10 ** (0.88 * math.log10(params) + 163.27 / math.log10(flops) - 5.74)


def small_config(target: dict, g: int) -> dict:
    """The small model's shape: the target's width, vocabulary and heads, L/g layers."""
    L = target["num_hidden_layers"]
    if g < 2 or L % g:
        raise GrowthError(f"growth factor g = {g} must be >= 2 and divide the target's {L} layers")
    return {**target, "num_hidden_layers": L // g}


def budget(target: dict, small: dict, seq_len: int, tokens_per_step: int, scratch_steps: int,
           small_tokens: float) -> dict:
    """Steps and FLOPs of one growth setting: the scratch run's cost is the budget; the small model trains
    for ``small_tokens`` (whole steps, at least one); the grown model gets the rest."""
    f_target = training_flops_per_token(target, seq_len, None, "all")
    f_small = training_flops_per_token(small, seq_len, None, "all")
    scratch_flops = scratch_steps * tokens_per_step * f_target
    small_steps = max(1, math.ceil(small_tokens / tokens_per_step))
    small_flops = small_steps * tokens_per_step * f_small
    grown_steps = round((scratch_flops - small_flops) / (tokens_per_step * f_target))
    if grown_steps < 1:
        raise GrowthError(f"the small model's {small_steps} steps ({small_flops:.3g} FLOPs) leave no step of "
                          f"the {scratch_flops:.3g}-FLOP budget for the grown model; lower d")
    return {"scratch_steps": scratch_steps, "small_steps": small_steps, "grown_steps": grown_steps,
            "scratch_flops": scratch_flops, "small_flops": small_flops,
            "grown_flops": grown_steps * tokens_per_step * f_target,
            "target_flops_per_token": f_target, "small_flops_per_token": f_small,
            "tokens_per_step": tokens_per_step}


def small_tokens(d: float, scratch_steps: int, tokens_per_step: int) -> float:
    """d as configured: a fraction of the scratch run's tokens (d < 1) or a token count."""
    if d <= 0:
        raise GrowthError(f"growth timing d must be positive, got {d}")
    return d * scratch_steps * tokens_per_step if d < 1 else float(d)


def reach_flops(curve: list[tuple[float, float]], target_loss: float) -> float | None:
    """The FLOPs at which a (FLOPs, loss) curve first reaches ``target_loss``, linearly interpolated
    between evaluations; None if it never does."""
    for (f0, l0), (f1, l1) in zip([(None, None)] + curve[:-1], curve):
        if l1 <= target_loss:
            if f0 is None or l0 == l1:
                return f1
            return f0 + (f1 - f0) * (l0 - target_loss) / (l0 - l1)
    return None


def speedup(scratch_total_flops: float, reached_at: float | None) -> float | None:
    """1 − (FLOPs the grown run needed to reach scratch's final loss) / (scratch's FLOPs)."""
    return None if reached_at is None else 1 - reached_at / scratch_total_flops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepen.train.growth", description="Gstack model growth tools")
    sub = ap.add_subparsers(dest="command", required=True)
    timing = sub.add_parser("timing", help="recommended growth timing d and factor g",
                            description=GUIDELINE, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.add_argument("--params", type=float, required=True, help="N, the target model's parameters")
    budget_arg = timing.add_mutually_exclusive_group(required=True)
    budget_arg.add_argument("--flops", type=float, help="C, the target's training FLOPs")
    budget_arg.add_argument("--tokens", type=float, help="D, the target's training tokens (C = 6·N·D)")
    args = ap.parse_args(argv)
    try:
        if args.tokens is not None and not (math.isfinite(args.tokens) and args.tokens > 0):
            raise GrowthError(f"tokens must be a positive number, got {args.tokens!r}")
        flops = args.flops if args.flops is not None else 6 * args.params * args.tokens
        d = guideline_tokens(args.params, flops)
    except GrowthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"N = {args.params:.4g} parameters, C = {flops:.4g} FLOPs")
    print(f"growth timing d = {d:.4g} tokens ({d / 1e9:.3g}B); growth factor g = 4")
    if args.tokens is not None:
        print(f"  = {d / args.tokens:.2%} of the {args.tokens:.4g} training tokens")
    lo, hi = PAPER_PARAMS_RANGE
    if not lo <= args.params <= hi:
        print(f"note: N is outside the {lo:.2g}–{hi:.2g} parameters of the paper's experiments: an extrapolation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
