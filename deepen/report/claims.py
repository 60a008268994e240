"""The papers' claims, taken from the config (``report.claims``), checked against one run's numbers.

A claim compares one method with others at step 0 (``init``: every expanded model's loss on the fixed val
slice, trained or not) and/or after CPT (``final``: paired by seed, under each freeze policy both ran), or
asks whether a method reaches the target loss within a fraction of the CPT steps. Each comparison
*supports* the claim, *contradicts* it, or *cannot decide* it (one seed, an interval that includes zero,
a row this run did not train, an evaluation too coarse to place the crossing); the claim's verdict is
"contradicts" if any comparison contradicts it, "supports" if all support it, else "cannot decide".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deepen.core.stats import paired_difference, t_interval

SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "cannot decide"


@dataclass
class Verdict:
    claim: dict
    verdict: str
    evidence: list[str]

    def sentence(self) -> str:
        source = f" ({self.claim['source']})" if self.claim.get("source") else ""
        return f"**{self.verdict}**: {self.claim['text']}{source}. " + "; ".join(self.evidence) + "."


def _combine(parts: list[str]) -> str:
    if not parts or CONTRADICTS in parts:
        return CONTRADICTS if parts else UNDECIDED
    return SUPPORTS if all(p == SUPPORTS for p in parts) else UNDECIDED


def _compare_init(method: str, other: str, direction: str, init: dict[str, list[float]]) -> tuple[str, str]:
    """``init``: method -> step-0 losses of its models (one per seed for a generator drawing random numbers)."""
    if method not in init or other not in init:
        missing = [m for m in (method, other) if m not in init]
        return UNDECIDED, f"{' and '.join(f'`{m}`' for m in missing)} not in this run"
    a, b = t_interval(init[method]), t_interval(init[other])
    diff = a.mean - b.mean
    text = f"step 0: `{method}` {a.format()} vs `{other}` {b.format()} ({diff:+.4f})"
    noisy = [x for x in (a, b) if x.n > 1]
    if noisy and any(abs(diff) <= x.half_width for x in noisy):
        return UNDECIDED, text + ", within the seed-to-seed spread of its random models"
    below = diff < 0
    return (SUPPORTS if below == (direction == "below") else CONTRADICTS), text


def _compare_final(method: str, other: str, direction: str, finals: dict[tuple[str, str], dict[int, float]]
                   ) -> list[tuple[str, str]]:
    """``finals``: (method, freeze) -> {seed: final val loss}; one comparison per freeze policy both trained."""
    policies = [f for (m, f) in finals if m == method and (other, f) in finals]
    if not policies:
        trained = [m for m in (method, other) if not any(k[0] == m for k in finals)]
        why = (f"{' and '.join(f'`{m}`' for m in trained)} not trained in this run" if trained
               else "no freeze policy that both trained")
        return [(UNDECIDED, f"after CPT: {why}")]
    out = []
    for policy in policies:
        d = paired_difference(finals[(method, policy)], finals[(other, policy)])
        text = f"after CPT under `{policy}`: `{method}` − `{other}` = {d.mean:+.4f}"
        if math.isnan(d.half_width):
            out.append((UNDECIDED, text + f" ({d.n} shared seed{'s' if d.n != 1 else ''}, no interval)"))
            continue
        text += f" ± {d.half_width:.4f} (paired, {d.n} seeds)"
        if not d.excludes_zero():
            out.append((UNDECIDED, text + ", the interval includes zero"))
        else:
            out.append((SUPPORTS if (d.mean < 0) == (direction == "below") else CONTRADICTS, text))
    return out


def _reaches(method: str, fraction: float, runs: dict[tuple[str, str], dict[int, list[dict]]], steps: int,
             target: float, target_name: str) -> list[tuple[str, str]]:
    """``runs``: (method, freeze) -> {seed: metrics lines}. A seed supports when an evaluation at or before
    ``fraction`` × steps is at or below the target, contradicts when one at or after it is still above."""
    keys = [k for k in runs if k[0] == method]
    if not keys:
        return [(UNDECIDED, f"`{method}` not trained in this run")]
    limit = fraction * steps
    out = []
    for key in keys:
        per_seed, reached = [], []
        for _, metrics in sorted(runs[key].items()):
            first = next((m["step"] for m in metrics if m["val_loss"] <= target), None)
            # still above the target at an evaluation at or after the limit, before any crossing
            late = any(m["step"] >= limit and m["val_loss"] > target for m in metrics if first is None or m["step"] < first)
            per_seed.append(SUPPORTS if first is not None and first <= limit else CONTRADICTS if late else UNDECIDED)
            reached.append("never" if first is None else f"step {first}")
        verdict = per_seed[0] if len(set(per_seed)) == 1 else UNDECIDED
        out.append((verdict, f"under `{key[1]}`: reaches {target_name} ({target:.4f}) at {', '.join(reached)} of "
                             f"{steps} steps (limit {limit:g}; {len(per_seed)} seed{'s' if len(per_seed) != 1 else ''})"))
    return out


def check_claims(claims: list[dict], init: dict[str, list[float]], finals: dict[tuple[str, str], dict[int, float]],
                 runs: dict[tuple[str, str], dict[int, list[dict]]], steps: int, target: float,
                 target_name: str) -> list[Verdict]:
    verdicts = []
    for claim in claims:
        method = claim["row"]
        parts: list[tuple[str, str]] = []
        if "reaches_target_within" in claim:
            parts += _reaches(method, claim["reaches_target_within"], runs, steps, target, target_name)
        for direction in ("below", "above"):
            for other in claim.get(direction, []):
                stages = claim.get("compare", ["final"])
                for stage in [stages] if isinstance(stages, str) else stages:
                    if stage == "init":
                        parts.append(_compare_init(method, other, direction, init))
                    else:
                        parts += _compare_final(method, other, direction, finals)
        verdicts.append(Verdict(claim, _combine([p for p, _ in parts]), [e for _, e in parts]))
    return verdicts
