"""The growth comparison's runs (Gstack): the target trained from scratch, the small models, and the small models
grown to the target's depth and trained on, each within the scratch run's FLOPs (deepen/train/growth.py)."""

from __future__ import annotations

from pathlib import Path

from deepen.core.atomic import write_json
from deepen.data.tokenizer import load_tokenizer
from deepen.data.tokens import open_tokens
from deepen.models.flops import training_flops_per_token
from deepen.expand import growth_operators
from deepen.train import growth
from deepen.train.metrics import read_metrics


def _growth_budget(model_cfg, train_cfg, g, d, scratch_steps, tokenizer) -> dict:
    from deepen.models.modeling import tiny_llama_config

    target = tiny_llama_config(model_cfg, tokenizer).to_dict()
    small = growth.small_config(target, g)
    tokens_per_step = train_cfg["batch_size"] * train_cfg["seq_len"]
    return growth.budget(target, small, train_cfg["seq_len"], tokens_per_step, scratch_steps,
                         growth.small_tokens(d, scratch_steps, tokens_per_step))


def _growth_train(model, tokenizer, train_bin, val_bin, train_cfg, steps, seed, out_dir, work_dir, threads,
                  info: dict) -> None:
    from deepen.models.modeling import count_parameters
    from deepen.train.trainer import train

    cfg = {**train_cfg, "steps": steps, "seed": seed, "freeze": "all", "plateau": None}
    result = train(model, tokenizer, open_tokens(train_bin, tokenizer), open_tokens(val_bin, tokenizer),
                   cfg, work_dir, out_dir, threads=threads)
    final_val_loss = read_metrics(Path(work_dir) / "metrics.jsonl")[-1]["val_loss"]
    write_json({**result, **info, "params": count_parameters(model), "final_val_loss": final_val_loss},
               Path(work_dir) / "info.json")


def growth_scratch_stage(model_cfg, train_cfg, steps, seed, tokenizer_dir, train_bin, val_bin, out_dir, work_dir,
                         threads=1) -> None:
    """The growth target trained from scratch for ``steps``: the FLOPs budget of every grown run."""
    from deepen.models.modeling import init_tiny_llama

    tokenizer = load_tokenizer(tokenizer_dir)
    model = init_tiny_llama(model_cfg, tokenizer, seed)
    f = training_flops_per_token(model.config.to_dict(), train_cfg["seq_len"], None, "all")
    _growth_train(model, tokenizer, train_bin, val_bin, train_cfg, steps, seed, out_dir, work_dir, threads,
                  {"role": "scratch", "flops_offset": 0.0, "flops_per_token": f,
                   "tokens_per_step": train_cfg["batch_size"] * train_cfg["seq_len"]})


def growth_small_stage(model_cfg, train_cfg, g, d, scratch_steps, seed, tokenizer_dir, train_bin, val_bin, out_dir,
                       work_dir, threads=1) -> None:
    """The small model of L/g layers, trained for d tokens."""
    from deepen.models.modeling import init_tiny_llama

    tokenizer = load_tokenizer(tokenizer_dir)
    run_budget = _growth_budget(model_cfg, train_cfg, g, d, scratch_steps, tokenizer)
    model = init_tiny_llama(growth.small_config(model_cfg, g), tokenizer, seed)
    _growth_train(model, tokenizer, train_bin, val_bin, train_cfg, run_budget["small_steps"], seed, out_dir, work_dir,
                  threads, {"role": "small", "g": g, "d": d, "flops_offset": 0.0,
                            "flops_per_token": run_budget["small_flops_per_token"], **run_budget})


def growth_grown_stage(model_cfg, train_cfg, g, d, operator, scratch_steps, seed, small_dir, tokenizer_dir,
                       train_bin, val_bin, out_dir, work_dir, threads=1) -> None:
    """The small model grown by ``operator`` to the target's depth, trained on with a fresh optimizer and
    schedule for the steps the budget leaves."""
    import shutil

    from deepen.models.modeling import load_causal_lm

    tokenizer = load_tokenizer(tokenizer_dir)
    run_budget = _growth_budget(model_cfg, train_cfg, g, d, scratch_steps, tokenizer)
    # the grown model at step 0, made as every expanded model is (deepen/expand/growth_operators.py: grow), then loaded
    # to train
    grown = Path(work_dir) / "grown_init"
    shutil.rmtree(grown, ignore_errors=True)
    model = load_causal_lm(growth_operators.grow(small_dir, grown / "model", g, operator, seed, grown))
    shutil.rmtree(grown)
    # Another data seed than the small model's: the grown run does not replay the windows it saw.
    _growth_train(model, tokenizer, train_bin, val_bin, train_cfg, run_budget["grown_steps"], seed + 1000, out_dir,
                  work_dir, threads, {"role": "grown", "operator": operator, "g": g, "d": d, "seed": seed,
                                      "flops_offset": run_budget["small_flops"],
                                      "flops_per_token": run_budget["target_flops_per_token"], **run_budget})


def growth_stage(role: str, model_cfg, train_cfg, scratch_steps, wildcards: dict, inputs: dict, out_dir, work_dir,
                 threads=1) -> None:
    """One run of the growth comparison, by ``role`` (scratch, small or grown); ``wildcards``: g, d, operator and
    seed as the run's path gives them; ``inputs``: tokenizer, train, val, and the small model to grow."""
    seed, data = int(wildcards["seed"]), (inputs["tokenizer"], inputs["train"], inputs["val"])
    if role == "scratch":
        return growth_scratch_stage(model_cfg, train_cfg, scratch_steps, seed, *data, out_dir, work_dir, threads)
    g, d = int(wildcards["g"]), float(wildcards["d"])
    if role == "small":
        return growth_small_stage(model_cfg, train_cfg, g, d, scratch_steps, seed, *data, out_dir, work_dir, threads)
    if role == "grown":
        return growth_grown_stage(model_cfg, train_cfg, g, d, wildcards["operator"], scratch_steps, seed,
                                  inputs["small"], *data, out_dir, work_dir, threads)
    raise ValueError(f"unknown growth role {role!r}: scratch, small or grown")
