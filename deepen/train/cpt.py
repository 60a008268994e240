"""Continual pretraining of one expanded model (or the base, for the 'no expansion' row): one process, or itself
under torchrun (deepen/train/launch.py) with cpt.nproc processes on each of cpt.nodes nodes."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.core.atomic import write_json
from deepen.core.schema import training_defaults
from deepen.data.tokenizer import load_tokenizer
from deepen.data.tokens import open_tokens
from deepen.expand import plan as plans
from deepen.models.families import family_for
from deepen.models.flops import training_flops_per_token
from deepen.train.launch import is_main_process, world_size


def cpt_stage(method: str, model_dir, train_bin, val_bin, cfg: dict, work_dir, final_dir, info_path,
              threads=1) -> None:
    """Continual pretraining of one expanded model (or the base, for the 'no expansion' row).

    With ``cfg['nproc'] > 1`` it launches itself under torchrun (gloo on CPU, nccl on GPU), each process with its
    share of the threads and of the batch; with ``cfg['nodes'] > 1``, one torchrun per node of its SLURM allocation
    through srun (deepen/train/launch.py). The main process writes the results."""
    from deepen.train.trainer import prepare_run

    full = {**training_defaults(), **cfg}
    nproc, nodes = full["nproc"], full["nodes"]
    if (nproc > 1 or nodes > 1) and world_size() == 1:
        import subprocess

        from deepen.train.launch import launch_command

        prepare_run(cfg, work_dir, processes=nproc * nodes)
        args = dict(method=method, model_dir=str(model_dir), train_bin=str(train_bin), val_bin=str(val_bin), cfg=cfg,
                    work_dir=str(work_dir), final_dir=str(final_dir), info_path=str(info_path),
                    threads=max(1, threads // nproc))
        subprocess.run(launch_command(nodes, nproc, threads, ["-m", "deepen.train.torchrun_worker", json.dumps(args)]),
                       check=True)
        return
    tokenizer = load_tokenizer(model_dir)
    continue_pretraining(method, model_dir, open_tokens(train_bin, tokenizer), open_tokens(val_bin, tokenizer), cfg,
                         work_dir, final_dir, info_path, tokenizer, threads=threads)


def continue_pretraining(method: str, model_dir, train_tokens, val_tokens, cfg: dict, work_dir, final_dir, info_path,
                         tokenizer=None, threads=1, continue_from=None):
    """CPT of one model on token streams: the layers the plan added train under ``new_only``; ``continue_from``: a
    checkpoint of an earlier run of the same model this one continues (deepen/train/trainer.py). Returns the trained
    model."""
    from deepen.models.model_dir import read_model_config
    from deepen.models.model_dir import check_model_dir
    from deepen.models.modeling import count_parameters, load_causal_lm
    from deepen.train.trainer import train

    config = read_model_config(model_dir)
    check_model_dir(model_dir, family_for(config.get("model_type", "")), config)
    model = load_causal_lm(model_dir)  # train() sets the attention kernel
    plan_path = Path(model_dir) / "deepen_plan.json"
    plan_info = plans.load(plan_path) if plan_path.exists() else {"plan": [], "generator": ""}
    added = plans.added_layers(plan_info["plan"])
    flops = training_flops_per_token(model.config.to_dict(), cfg["seq_len"], added, cfg["freeze"])
    result = train(model, tokenizer, train_tokens, val_tokens, cfg, work_dir, final_dir, trainable_layers=added,
                   threads=threads, continue_from=continue_from)
    if not is_main_process():
        return model
    write_json({"method": method, "generator": plan_info.get("generator", ""), "freeze": cfg["freeze"],
                "processes": world_size(), "nodes": {**training_defaults(), **cfg}["nodes"],
                "seed": cfg["seed"], "layers": model.config.num_hidden_layers, "params": count_parameters(model),
                "added_layers": added, "train_flops_per_token": flops,
                "tokens_per_step": cfg["batch_size"] * cfg["seq_len"], **result}, info_path)
    return model
