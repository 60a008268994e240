"""A method race: successive halving of candidate CPT rows on the CPT budget.

Every candidate trains the first rung; after each rung the better share (``race.keep``, by val loss on the fixed
slice) continues from its checkpoint to the next, until one is left or the rungs end. A candidate just below the cut
whose loss the race cannot tell from the last one kept (the paired interval of their per-window losses on the same
val windows contains 0) continues too: a tie is not decided by noise. The winner then decays its learning rate over
``race.cooldown_steps`` (warmup-stable-decay: the rate is constant through every rung, so a rung's checkpoint is where
an uninterrupted run of that length would be, and continuing it costs nothing extra).

Nothing here trains: the rung settings, the decision after a rung, and the bracket (what ran, what it cost against
training every candidate to the end). deepen/train/race_runs.py runs the stages."""

from __future__ import annotations

import math

from deepen.core.stats import t_interval

SCHEDULE = "warmup_stable_decay"


def rung_ends(race: dict) -> list[int]:
    """The CPT step each rung ends at."""
    return list(race["rungs"])


def rung_settings(cpt: dict, race: dict, rung: int, seed: int) -> dict:
    """The CPT settings of rung ``rung`` (1-based) of a candidate with freeze policy set by the caller: ``cpt``'s,
    trained to the rung's end step at a constant rate after warmup, on windows drawn for the whole race."""
    ends, cooldown = rung_ends(race), race["cooldown_steps"]
    cpt = {k: v for k, v in cpt.items() if k != "seeds"}
    # the decay starts past every rung: a rung ends at the full rate, which the next rung's first step takes
    return {**cpt, "steps": ends[rung - 1], "schedule": SCHEDULE, "decay_steps": cooldown, "seed": seed,
            "decay_start": ends[-1] + cooldown, "window_steps": ends[-1] + cooldown, "windows_in_order": True,
            "keep_checkpoints": True}


def cooldown_settings(cpt: dict, race: dict, last_rung: int, seed: int) -> dict:
    """The winner's last stretch: from its last rung's checkpoint, ``cooldown_steps`` more steps over which the rate
    decays to 0."""
    settings = rung_settings(cpt, race, last_rung, seed)
    cooldown = race["cooldown_steps"]
    return {**settings, "steps": settings["steps"] + cooldown, "decay_start": settings["steps"],
            "keep_checkpoints": False}


def decide(losses: dict[str, list[float]], keep: float, last_rung: bool, confidence: float = 0.95) -> dict:
    """The decision after a rung: ``losses`` {candidate: its per-window val losses, the same windows for every
    candidate}. Returns the ranking (mean loss), who continues, and whether the race is over (one left, or the last
    rung), with the winner when it is."""
    means = {c: sum(v) / len(v) for c, v in losses.items()}
    ranking = sorted(means, key=lambda c: (means[c], c))
    cut = max(1, math.ceil(len(ranking) * keep))
    last_kept = ranking[cut - 1]
    rows, survivors = [], []
    for rank, c in enumerate(ranking):
        gap = t_interval([a - b for a, b in zip(losses[c], losses[last_kept])], confidence)
        tied = rank >= cut and not gap.excludes_zero()
        kept = rank < cut or tied
        if kept:
            survivors.append(c)
        rows.append({"candidate": c, "val_loss": means[c], "rank": rank + 1, "kept": kept, "tied": tied,
                     "gap_to_last_kept": gap.mean, "gap_half_width": gap.half_width})
    over = len(survivors) == 1 or last_rung
    return {"ranking": rows, "survivors": survivors, "over": over, "winner": ranking[0] if over else None}


def bracket(decisions: list[dict], race: dict, cpt: dict, candidates: list[str]) -> dict:
    """What the race ran and what it cost: per rung, who trained and how it ranked; the steps the race trained
    against training every candidate to the last rung's end and cooling it down (the full comparison, one seed)."""
    ends = rung_ends(race)
    tokens_per_step = cpt["batch_size"] * cpt["seq_len"]
    steps = 0
    rungs = []
    for index, decision in enumerate(decisions):
        start = ends[index - 1] if index else 0
        trained = [row["candidate"] for row in decision["ranking"]]
        steps += len(trained) * (ends[index] - start)
        rungs.append({"rung": index + 1, "end_step": ends[index], **decision})
    steps += race["cooldown_steps"]
    full = len(candidates) * (ends[-1] + race["cooldown_steps"])
    return {"candidates": candidates, "rungs": rungs, "winner": decisions[-1]["winner"],
            "cooldown_steps": race["cooldown_steps"], "race_steps": steps,
            "full_steps": full, "race_tokens": steps * tokens_per_step, "full_tokens": full * tokens_per_step,
            "fraction": steps / full}
