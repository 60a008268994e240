"""The method race (deepen/train/race.py): its decisions, and a schedule under which a run stopped at a rung and
continued is the run that never stopped."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import copy_run, kill_when, snakemake
from deepen.train import race
from deepen.train.race_runs import run_cooldown, run_rung

RACE = {"rungs": [4, 8], "keep": 0.5, "cooldown_steps": 4}
CPT = {"steps": 99, "seeds": 2, "batch_size": 4, "seq_len": 16, "lr": 1.0e-3, "warmup_steps": 2, "weight_decay": 0.0,
       "eval_interval": 4, "eval_tokens": 256, "checkpoint_interval": 4, "freeze": "all"}


def windows(mean, n=40, spread=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return list(mean + spread * rng.standard_normal(n))


def test_the_better_half_continues():
    shared = windows(0.0)
    losses = {name: [x + offset for x in shared] for name, offset in
              {"a": 1.0, "b": 1.2, "c": 1.4, "d": 1.6}.items()}
    decision = race.decide(losses, keep=0.5, last_rung=False)
    assert decision["survivors"] == ["a", "b"] and not decision["over"] and decision["winner"] is None
    assert [row["rank"] for row in decision["ranking"]] == [1, 2, 3, 4]
    final = race.decide({c: losses[c] for c in ("a", "b")}, keep=0.5, last_rung=False)
    assert final["survivors"] == ["a"] and final["over"] and final["winner"] == "a"


def test_a_tie_at_the_cut_continues():
    """c's mean is above b's, but on the same windows the difference is noise: both continue."""
    shared = windows(1.0)
    noise = windows(0.0, spread=0.2, seed=1)
    losses = {"a": [x - 0.5 for x in shared], "b": shared, "c": [x + 0.01 + e for x, e in zip(shared, noise)],
              "d": [x + 0.8 for x in shared]}
    decision = race.decide(losses, keep=0.5, last_rung=False)
    tied = {row["candidate"]: row["tied"] for row in decision["ranking"]}
    assert decision["survivors"] == ["a", "b", "c"] and tied == {"a": False, "b": False, "c": True, "d": False}


def test_the_last_rung_ends_the_race_with_the_lowest_loss():
    shared = windows(1.0)
    decision = race.decide({"a": shared, "b": [x + 0.001 for x in shared], "c": [x + 0.3 for x in shared]}, 0.5,
                           last_rung=True)
    assert decision["over"] and decision["winner"] == "a"


def test_the_bracket_counts_what_the_race_trained():
    rungs = [{"ranking": [{"candidate": c} for c in "abcd"], "survivors": ["a", "b"], "over": False, "winner": None},
             {"ranking": [{"candidate": c} for c in "ab"], "survivors": ["a"], "over": True, "winner": "a"}]
    result = race.bracket(rungs, RACE, CPT, list("abcd"))
    # 4 candidates × 4 steps, 2 × 4 more, the winner's 4 cooldown steps; against 4 × (8 + 4)
    assert (result["race_steps"], result["full_steps"], result["winner"]) == (28, 48, "a")
    assert result["fraction"] == pytest.approx(28 / 48) and result["race_tokens"] == 28 * 64


def test_a_stopped_run_continued_is_the_uninterrupted_run(tiny_llama_dir, tmp_path):
    """Two rungs and the cooldown, each a process of its own continuing the last one's checkpoint, give the weights
    of one run of the same length under the same schedule."""
    from transformers import AutoModelForCausalLM

    from deepen.train.trainer import train

    rng = np.random.default_rng(0)
    tokens, val = rng.integers(0, 128, 4096).astype(np.uint16), rng.integers(0, 128, 1024).astype(np.uint16)
    first = race.rung_settings(CPT, RACE, 1, seed=0)
    second = race.rung_settings(CPT, RACE, 2, seed=0)
    last = race.cooldown_settings(CPT, RACE, 2, seed=0)
    assert (first["steps"], second["steps"], last["steps"], last["decay_steps"]) == (4, 8, 12, 4)
    run_rung("c", tiny_llama_dir, tokens, val, first, tmp_path / "r1", tmp_path / "r1.json", tmp_path / "s1")
    run_rung("c", tiny_llama_dir, tokens, val, second, tmp_path / "r2", tmp_path / "r2.json", tmp_path / "s2",
             previous_state=tmp_path / "s1")
    run_cooldown("c", tiny_llama_dir, tokens, val, last, tmp_path / "cool", tmp_path / "final", tmp_path / "cool.json",
                 state=tmp_path / "s2")
    info = json.loads((tmp_path / "r2.json").read_text())
    assert info["resumed_from_step"] == 4 and len(info["window_losses"]) == 256 // 16

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    train(model, None, tokens, val, {**last, "keep_checkpoints": False}, tmp_path / "whole", tmp_path / "whole_final")
    continued = load_file(tmp_path / "final/model.safetensors")
    whole = load_file(tmp_path / "whole_final/model.safetensors")
    assert continued.keys() == whole.keys()
    assert all(torch.equal(continued[k], whole[k]) for k in whole)
    lrs = [m["lr"] for m in map(json.loads, (tmp_path / "cool/metrics.jsonl").read_text().splitlines()) if m["lr"]]
    assert lrs[-1] < CPT["lr"] / 2  # the rate decayed over the cooldown


def race_outputs(workdir):
    """{path under results/race: mtime} of every file the race wrote."""
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in (workdir / "results/race").rglob("*")
            if p.is_file()}


def test_the_quick_race_halves_and_a_rerun_runs_nothing(quick_run):
    bracket = json.loads((quick_run / "results/race/bracket.json").read_text())
    first = bracket["rungs"][0]
    assert [row["candidate"] for row in first["ranking"]] != [] and len(first["ranking"]) == 4
    assert 2 <= len(first["survivors"]) < 4  # the better half, and any tied with it
    for earlier, later in zip(bracket["rungs"], bracket["rungs"][1:]):
        assert sorted(row["candidate"] for row in later["ranking"]) == sorted(earlier["survivors"])
    assert bracket["rungs"][-1]["over"] and bracket["winner"] == bracket["rungs"][-1]["ranking"][0]["candidate"]
    assert bracket["race_steps"] < bracket["full_steps"]
    # the winner's cooldown continued its last rung's checkpoint and decayed to a rate of 0
    info = json.loads((quick_run / "results/race/winner/info.json").read_text())
    assert info["resumed_from_step"] == bracket["rungs"][-1]["end_step"]
    assert (quick_run / "results/race/winner/final/model.safetensors").exists()
    out = snakemake(quick_run, "-n", "--cores", "2", "--configfile", "config/quick.yaml")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_a_killed_race_resumes_and_reuses_every_finished_rung(quick_run, tmp_path):
    """Snakemake killed as soon as the first decision is made (rung 2 starting): the rerun keeps rung 1 and its
    decision as they were and ends with the same bracket."""
    workdir = copy_run(quick_run, tmp_path / "run")
    expected = json.loads((workdir / "results/race/bracket.json").read_text())
    for folder in ("results/race", "logs/race"):  # the race from scratch, on the run's expanded models
        shutil.rmtree(workdir / folder)
    args = ["results/race/bracket.json", "--cores", "2", "--configfile", "config/quick.yaml"]
    decision = workdir / "results/race/rung1.json"
    # killed once a rung-2 job has started: the decision before it is then recorded as complete (killed while it
    # writes, the rerun makes the decision again, as it should)
    kill_when(workdir, args, "logs/race/*/*/rung2.log")
    assert decision.exists() and not (workdir / "results/race/bracket.json").exists()
    before = race_outputs(workdir)
    assert any("rung1/" in p for p in before)

    snakemake(workdir, "--unlock", "--configfile", "config/quick.yaml")
    snakemake(workdir, *args, "--rerun-incomplete")
    after = race_outputs(workdir)
    assert {p: t for p, t in after.items() if "rung1" in p} == {p: t for p, t in before.items() if "rung1" in p}
    assert json.loads((workdir / "results/race/bracket.json").read_text()) == expected
