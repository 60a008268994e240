"""The race panel (deepen/train/race.py), present when race.enabled: the bracket as a figure (each candidate's val
loss at each rung it ran, the eliminated ones ending where they were cut), the winner, and the race's cost against
training every candidate to the end."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.core.paths import result_path
from deepen.report.panels import panel, save_figure



def race_files(facts):
    return {"bracket": result_path("race_bracket", "bracket")} if facts.config.get("race", {}).get("enabled") else None


def plot_bracket(bracket: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    colours = plt.get_cmap("tab10").colors
    for i, candidate in enumerate(bracket["candidates"]):
        points = [(rung["end_step"], row["val_loss"], row["kept"]) for rung in bracket["rungs"]
                  for row in rung["ranking"] if row["candidate"] == candidate]
        xs, ys, kept = zip(*points)
        winner = candidate == bracket["winner"]
        ax.plot(xs, ys, "-", color=colours[i % len(colours)], lw=2.5 if winner else 1.2,
                label=candidate + (" (winner)" if winner else ""))
        ax.plot(xs[-1], ys[-1], "o" if kept[-1] else "x", color=colours[i % len(colours)], ms=8)
    if bracket.get("winner_final_val_loss") is not None:
        end = bracket["rungs"][-1]["end_step"] + bracket["cooldown_steps"]
        ax.plot([end], [bracket["winner_final_val_loss"]], "*", color="k", ms=12, label="winner after its cooldown")
    ax.set_xlabel("CPT step (end of each rung)")
    ax.set_ylabel("val loss on the fixed slice")
    ax.set_title(f"Race: {len(bracket['candidates'])} candidates, {bracket['fraction']:.0%} of the full comparison's "
                 "steps (x: cut)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


@panel("race", race_files, writes=("race.png",))
def race_panel(inputs, params, view) -> list[str]:
    bracket = json.loads(Path(inputs["bracket"][0]).read_text())
    plot_bracket(bracket, view.out_dir / "race.png")
    lines = ["## The race", "",
             f"Successive halving over {len(bracket['candidates'])} candidates, one seed: after each rung the better "
             "share by val loss on the fixed slice continues from its checkpoint (a candidate the paired interval of "
             "per-window losses cannot tell from the last one kept continues too), under a warmup-stable-decay "
             "schedule whose decay only the winner runs. The interval is over val windows, not over training seeds: "
             "it says the slice separates two models, not that another seed would.", "",
             "| rung | ends at step | candidate | val loss | rank | gap to last kept (95%) | continues |",
             "|---|---|---|---|---|---|---|"]
    for rung in bracket["rungs"]:
        for row in rung["ranking"]:
            gap = (f"{row['gap_to_last_kept']:+.4f} ± {row['gap_half_width']:.4f}"
                   if row["gap_to_last_kept"] else "")
            verdict = "tied" if row["tied"] else ("yes" if row["kept"] else "no")
            lines.append(f"| {rung['rung']} | {rung['end_step']} | {row['candidate']} | {row['val_loss']:.4f} | "
                         f"{row['rank']} | {gap} | {verdict} |")
    lines += ["", f"Winner: **{bracket['winner']}**, val loss {bracket['winner_final_val_loss']:.4f} after its "
              f"{bracket['cooldown_steps']} cooldown steps. The race trained {bracket['race_steps']} steps "
              f"({bracket['race_tokens']:,} tokens); training every candidate to the last rung and cooling it down "
              f"takes {bracket['full_steps']} ({bracket['full_tokens']:,}): {bracket['fraction']:.0%}.", "",
              "![race](race.png)", ""]
    return lines
