"""The race's stages (deepen/train/race.py): a candidate's rung, the decision after a rung, the winner's cooldown,
and the bracket."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from deepen.core.atomic import write_json
from deepen.data.tokenizer import load_tokenizer
from deepen.data.tokens import open_tokens
from deepen.train import race


def _tokens(model_dir, train_bin, val_bin):
    tokenizer = load_tokenizer(model_dir)
    return open_tokens(train_bin, tokenizer), open_tokens(val_bin, tokenizer), tokenizer


def run_rung(candidate: str, model_dir, train_tokens, val_tokens, cfg: dict, rung_dir, info_path, state_dir,
             previous_state=None, tokenizer=None, threads: int = 1) -> None:
    """One rung of ``candidate`` (a CPT row): from the expanded model ``model_dir`` (the first rung) or the previous
    rung's checkpoint ``previous_state``, to the rung's end step. Writes the checkpoint the next rung continues
    (``state_dir``) and, into the run's info, each val window's loss, which the decision pairs."""
    from deepen.train.cpt import continue_pretraining
    from deepen.train.trainer import window_losses

    rung_dir = Path(rung_dir)
    model = continue_pretraining(candidate, model_dir, train_tokens, val_tokens, cfg, rung_dir, None, info_path,
                                 tokenizer, threads=threads, continue_from=previous_state)
    losses = window_losses(model, val_tokens, cfg["seq_len"], cfg["eval_tokens"],
                           cfg.get("micro_batch_size") or cfg["batch_size"])
    info = json.loads(Path(info_path).read_text())
    write_json({**info, "candidate": candidate, "val_loss": sum(losses) / len(losses), "window_losses": losses},
               info_path)
    kept = sorted((rung_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    os.replace(kept[-1], state_dir)
    shutil.rmtree(rung_dir / "checkpoints")


def rung_stage(candidate: str, model_dir, train_bin, val_bin, cfg: dict, rung_dir, info_path, state_dir,
               previous_state=None, threads: int = 1) -> None:
    """``run_rung`` on the tokenized splits."""
    train_tokens, val_tokens, tokenizer = _tokens(model_dir, train_bin, val_bin)
    run_rung(candidate, model_dir, train_tokens, val_tokens, cfg, rung_dir, info_path, state_dir, previous_state,
             tokenizer, threads)


def decide_stage(rung: int, infos: list, race_cfg: dict, out_path) -> None:
    """The decision after rung ``rung`` from the candidates' rung infos."""
    losses = {}
    for path in infos:
        info = json.loads(Path(path).read_text())
        losses[info["candidate"]] = info["window_losses"]
    decision = race.decide(losses, race_cfg["keep"], last_rung=rung == len(race.rung_ends(race_cfg)))
    write_json({"rung": rung, **decision}, out_path)


def run_cooldown(candidate: str, model_dir, train_tokens, val_tokens, cfg: dict, work_dir, final_dir, info_path,
                 state, tokenizer=None, threads: int = 1) -> None:
    """The winner's cooldown from its last rung's checkpoint ``state``: its final model."""
    from deepen.train.cpt import continue_pretraining

    continue_pretraining(candidate, model_dir, train_tokens, val_tokens, cfg, work_dir, final_dir, info_path,
                         tokenizer, threads=threads, continue_from=state)


def winner_cooldown_stage(decisions: list, model_dir, state, train_bin, val_bin, race_cfg: dict, cpt: dict, final_dir,
                          info_path, threads: int = 1) -> None:
    """The cooldown of the winner the last of ``decisions`` names, from ``state``, its last rung's checkpoint."""
    last = json.loads(Path(decisions[-1]).read_text())
    freeze = last["winner"].split("/")[1]
    cfg = {**race.cooldown_settings(cpt, race_cfg, len(decisions), race_cfg["seed"]), "freeze": freeze}
    train_tokens, val_tokens, tokenizer = _tokens(model_dir, train_bin, val_bin)
    run_cooldown(last["winner"], model_dir, train_tokens, val_tokens, cfg, Path(info_path).parent, final_dir,
                 info_path, state, tokenizer, threads)


def bracket_stage(decisions: list, cooldown_metrics, race_cfg: dict, cpt: dict, candidates: list[str],
                  out_path) -> None:
    """The bracket (deepen/train/race.py) and the winner's val loss after its cooldown."""
    from deepen.train.metrics import read_metrics

    loaded = [json.loads(Path(p).read_text()) for p in decisions]
    result = race.bracket(loaded, race_cfg, cpt, candidates)
    write_json({**result, "winner_final_val_loss": read_metrics(cooldown_metrics)[-1]["val_loss"]}, out_path)
