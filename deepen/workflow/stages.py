"""One entry point per workflow stage. Each takes plain paths and settings, so the stages run and
test without Snakemake; ``scripts/`` only unpacks ``snakemake.*`` into these calls."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.train import growth
from deepen.expand import plan as plans
from deepen.models.families import architecture_for
from deepen.core.atomic import atomic_dir, atomic_path
from deepen.data.corpus import build_corpus
from deepen.core.device import evaluation_dtype, stage_device
from deepen.models.flops import training_flops_per_token
from deepen.expand.execute import generate_layers
from deepen.expand.methods.contract import LayerSource
from deepen.train.launch import is_main_process, world_size
from deepen.train.metrics import read_metrics
from deepen.evaluate.embedded_tasks import build_task_data
from deepen.evaluate.harness import evaluate
from deepen.data.tokenizer import load_tokenizer, train_tokenizer
from deepen.data.tokens import open_tokens, write_token_file


def write_json(obj, path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2))


def corpus_stage(corpus_cfg: dict, out_dir) -> None:
    build_corpus(corpus_cfg, out_dir)


def tokens_stage(text_path, tokenizer_dir, bin_path, json_path, max_tokens=None, seed=0, workers: int = 1) -> None:
    write_token_file(text_path, tokenizer_dir, bin_path, json_path, workers=workers, max_tokens=max_tokens, seed=seed)


def tokenizer_stage(train_txt, vocab_size: int, out_dir) -> None:
    with atomic_dir(out_dir) as tmp:
        train_tokenizer(train_txt, vocab_size, tmp)


def pretrain_base_stage(model_cfg, train_cfg, seed, tokenizer_dir, train_bin, val_bin, out_dir, work_dir,
                        threads=1) -> None:
    from deepen.models.modeling import count_parameters, init_tiny_llama
    from deepen.train.trainer import train

    tokenizer = load_tokenizer(tokenizer_dir)
    model = init_tiny_llama(model_cfg, tokenizer, seed)
    cfg = {**train_cfg, "seed": seed, "freeze": "all"}
    result = train(model, tokenizer, open_tokens(train_bin, tokenizer), open_tokens(val_bin, tokenizer),
                   cfg, work_dir, out_dir, threads=threads)
    final_val_loss = read_metrics(Path(work_dir) / "metrics.jsonl")[-1]["val_loss"]
    write_json({**result, "params": count_parameters(model), "final_val_loss": final_val_loss},
               Path(work_dir) / "info.json")


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
    plan = _growth_budget(model_cfg, train_cfg, g, d, scratch_steps, tokenizer)
    model = init_tiny_llama(growth.small_config(model_cfg, g), tokenizer, seed)
    _growth_train(model, tokenizer, train_bin, val_bin, train_cfg, plan["small_steps"], seed, out_dir, work_dir,
                  threads, {"role": "small", "g": g, "d": d, "flops_offset": 0.0,
                            "flops_per_token": plan["small_flops_per_token"], **plan})


def growth_grown_stage(model_cfg, train_cfg, g, d, operator, scratch_steps, seed, small_dir, tokenizer_dir,
                       train_bin, val_bin, out_dir, work_dir, threads=1) -> None:
    """The small model grown by ``operator`` to the target's depth, trained on with a fresh optimizer and
    schedule for the steps the budget leaves."""
    import shutil

    from deepen.models.modeling import load_causal_lm

    tokenizer = load_tokenizer(tokenizer_dir)
    plan = _growth_budget(model_cfg, train_cfg, g, d, scratch_steps, tokenizer)
    # the grown model at step 0, made as every expanded model is (deepen/train/growth.py: grow), then loaded to train
    grown = Path(work_dir) / "grown_init"
    shutil.rmtree(grown, ignore_errors=True)
    model = load_causal_lm(growth.grow(small_dir, grown / "model", g, operator, seed, grown))
    shutil.rmtree(grown)
    # Another data seed than the small model's: the grown run does not replay the windows it saw.
    _growth_train(model, tokenizer, train_bin, val_bin, train_cfg, plan["grown_steps"], seed + 1000, out_dir,
                  work_dir, threads, {"role": "grown", "operator": operator, "g": g, "d": d, "seed": seed,
                                      "flops_offset": plan["small_flops"],
                                      "flops_per_token": plan["target_flops_per_token"], **plan})


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


def growth_report_stage(scratch: list[dict], grown: list[dict], png_path, md_path, csv_path) -> None:
    """``scratch``: {seed, metrics, info} per scratch run; ``grown``: {operator, g, d, seed, metrics, info,
    small_metrics, small_info} per grown run."""
    from deepen.report.growth_section import write_growth_report

    write_growth_report(scratch, grown, png_path, md_path, csv_path)


def sft_data_stage(train_txt, test_txt, out_dir, cfg: dict) -> None:
    from deepen.train.sft import build_sft_data

    counts = build_sft_data(train_txt, test_txt, out_dir, cfg)
    write_json(counts, Path(out_dir) / "counts.json")


def sft_stage(variant: str, model_dir, data_dir, cfg: dict, dlo_cfg: dict | None, seed: int, work_dir, final_dir,
              info_path, threads=1) -> None:
    """SFT of one variant: a dense model, or (``dlo_cfg`` given) the DLO model over the dense one. Afterwards,
    on the held-out examples: each layer's MLP execution rate and inference tokens/s, routed and with
    every MLP executed (the dense compute of the same weights)."""
    from deepen.train import dlo
    from deepen.models.modeling import count_parameters, load_causal_lm
    from deepen.train.sft import SFTSamples, read_examples
    from deepen.train.trainer import train

    tokenizer = load_tokenizer(model_dir)
    model = dlo.from_dense(model_dir, **dlo_cfg) if dlo_cfg else load_causal_lm(model_dir)
    steps, batch, seq_len = cfg["steps"], cfg["batch_size"], cfg["seq_len"]
    train_set = SFTSamples(read_examples(Path(data_dir) / "train.jsonl"), tokenizer, seq_len, steps * batch, seed)
    heldout = SFTSamples(read_examples(Path(data_dir) / "heldout.jsonl"), tokenizer, seq_len)
    result = train(model, tokenizer, train_set, heldout, {**cfg, "seed": seed, "freeze": "all", "plateau": None},
                   work_dir, final_dir, threads=threads)
    final_loss = read_metrics(Path(work_dir) / "metrics.jsonl")[-1]["val_loss"]
    model.eval()
    speed = dlo.inference_speed(model, heldout, batch, routed=bool(dlo_cfg))
    write_json({"variant": variant, "seed": seed, "params": count_parameters(model), "heldout_loss": final_loss,
                **result, **speed}, info_path)


def sft_report_stage(runs: list[dict], dense_row: str, md_path, csv_path, png_path) -> None:
    """``runs``: {row, seed, info, metrics, eval} per SFT run; ``dense_row``: the expansion DLO wraps."""
    from deepen.report.sft_section import write_sft_report

    write_sft_report(runs, dense_row, md_path, csv_path, png_path)


def import_base_stage(gguf_path, out_dir, dtype: str, max_shard_mb: int) -> None:
    from deepen.models.gguf_import import import_gguf

    import_gguf(gguf_path, out_dir, dtype=dtype, max_shard_bytes=max_shard_mb * 1024**2)


def init_loss_stage(name: str, model_dir, val_bin, cfg: dict, out_path, threads: int = 1, device: str = "auto") -> None:
    """A model's val loss on the fixed slice before any training: every expanded model's, trained or not,
    and the base's; on ``device`` (resources.device: deepen.core.device decides, and the dtype)."""
    import time

    import torch

    from deepen.models.model_dir import read_model_config
    from deepen.models.model_dir import check_model_dir
    from deepen.models.modeling import count_parameters, load_causal_lm
    from deepen.train.trainer import fixed_slice_loss

    torch.set_num_threads(max(1, threads))
    config = read_model_config(model_dir)
    check_model_dir(model_dir, architecture_for(config.get("model_type", "")), config)
    on = stage_device(device)
    model = load_causal_lm(model_dir, on, evaluation_dtype(on))
    tokenizer = load_tokenizer(model_dir)
    t0 = time.time()
    result = fixed_slice_loss(model, open_tokens(val_bin, tokenizer), cfg["seq_len"], cfg["eval_tokens"],
                              cfg["batch_size"])
    write_json({"model": name, "layers": model.config.num_hidden_layers, "params": count_parameters(model),
                **result, "seconds": round(time.time() - t0, 3), "device": on.type,
                "dtype": str(evaluation_dtype(on)).removeprefix("torch.")}, out_path)


def seams_stage(model_dir, plan_path, trained: dict, val_bin, cfg: dict, out_path, threads: int = 1,
                device: str = "auto") -> None:
    """Seam diagnostics (deepen/evaluate/seams.py) on the fixed val slice of an expanded model before CPT and, per freeze
    policy in ``trained`` ({freeze: CPT final model}), after it; on ``device`` (deepen.core.device)."""
    import torch

    from deepen.models.modeling import load_causal_lm
    from deepen.evaluate.seams import seam_diagnostics

    torch.set_num_threads(max(1, threads))
    plan = plans.load(plan_path)["plan"]
    tokens = open_tokens(val_bin, load_tokenizer(model_dir))

    on = stage_device(device)

    def measure(path):
        model = load_causal_lm(path, on, evaluation_dtype(on))
        if len(plan) != model.config.num_hidden_layers:
            raise ValueError(f"{path}: {model.config.num_hidden_layers} layers, but its plan {plan_path} has {len(plan)}")
        return seam_diagnostics(model, plan, tokens, cfg["seq_len"], cfg["eval_tokens"], cfg["batch_size"])

    write_json({"model": str(model_dir), "before": measure(model_dir),
                "after": {freeze: measure(path) for freeze, path in trained.items()}}, out_path)


def base_info_stage(base_dir, init_json, out_path) -> None:
    """info.json of an imported base: what was imported (deepen_import.json) and its perplexity on the val slice."""
    import math

    imported = json.loads((Path(base_dir) / "deepen_import.json").read_text())
    init = json.loads(Path(init_json).read_text())
    write_json({**imported, "val_loss": init["val_loss"], "val_perplexity": math.exp(init["val_loss"]),
                "val_tokens": init["val_tokens"]}, out_path)


def extract_stage(base_dir, matrix: str, out_path) -> None:
    from deepen.expand.weights import extract_matrix
    from deepen.models.model_dir import read_model_config
    from deepen.models.model_dir import check_model_dir

    config = read_model_config(base_dir)
    arch = architecture_for(config.get("model_type", ""))
    extract_matrix(check_model_dir(base_dir, arch, config), arch, config["num_hidden_layers"], matrix, out_path)


def align_stage(base_dir, out_dir, device: str = "auto") -> None:
    """The aligned base (deepen/expand/align.py), its cost matrices on ``device`` (deepen.core.device); the log lists how far
    each layer's neurons lay from its lower neighbour's before and after."""
    from deepen.expand.align import align_base

    record = align_base(base_dir, out_dir, device=stage_device(device))
    for layer in record["layers"]:
        print(f"layer {layer['layer']}: {layer['neurons_moved']:.0%} of neurons and {layer['heads_moved']:.0%} of "
              f"heads moved; mean neuron distance to layer {layer['layer'] - 1} "
              f"{layer['neuron_distance_raw']:.4g} -> {layer['neuron_distance_aligned']:.4g}")


def generate_stage(method: str, opts: dict, base_dir, weights_dir, out_dir, artifacts: dict | None = None,
                   device: str = "auto") -> None:
    """``artifacts``: {name: folder} of what the method declares it reads besides the weights; the methods compute
    on ``device`` (deepen.core.device)."""
    from deepen.expand.weights import LayerWeights
    from deepen.models.model_dir import read_model_config

    config = read_model_config(base_dir)
    arch = architecture_for(config.get("model_type", ""))
    source = LayerSource(LayerWeights(weights_dir, arch.matrices), arch, config,
                         {name: Path(folder) for name, folder in (artifacts or {}).items()},
                         device=stage_device(device))
    generate_layers(opts, source, out_dir, method)


def svd_stage(weights_path, out_path, report_path, device: str = "auto") -> None:
    """LESA's SVD of one matrix type, on ``device`` (deepen.core.device; deepen/expand/lesa/svd.py says what differs on a GPU)."""
    from deepen.expand.lesa.svd import svd_stage as run

    run(weights_path, out_path, report_path, device=stage_device(device))


def predictor_stage(source_path, key: str, cfg: dict, pt_path, json_path, threads=1, device: str = "auto") -> None:
    import torch

    from deepen.expand.lesa.predictor import BlockSource, save_predictor, train_predictor

    torch.set_num_threads(max(1, threads))
    model, report = train_predictor(BlockSource(source_path, key), cfg, device=stage_device(device))
    save_predictor(model, report, pt_path, json_path)


def predictor_heldout_stage(source_path, key: str, cfg: dict, layers: list[int] | None, json_path, threads=1,
                            device: str = "auto") -> None:
    """Leave-one-out fits of LESA's predictor on one matrix type: how well each held-out layer is predicted."""
    import torch

    from deepen.expand.lesa.predictor import BlockSource, heldout_fit

    torch.set_num_threads(max(1, threads))
    write_json(heldout_fit(BlockSource(source_path, key), cfg, layers, device=stage_device(device)), json_path)


def reconstruct_stage(method, base_dir, tokenizer_dir, plan_path, new_layers_path, out_dir, max_shard_mb) -> None:
    from deepen.expand.reconstruct import reconstruct

    reconstruct(base_dir, tokenizer_dir, plan_path, new_layers_path, out_dir, method,
                max_shard_bytes=max_shard_mb * 1024**2)


def cpt_stage(method: str, model_dir, train_bin, val_bin, cfg: dict, work_dir, final_dir, info_path,
              threads=1) -> None:
    """Continual pretraining of one expanded model (or the base, for the 'no expansion' row).

    With ``cfg['nproc'] > 1`` it launches itself under torchrun (gloo on CPU, nccl on GPU), each process with its
    share of the threads and of the batch; with ``cfg['nodes'] > 1``, one torchrun per node of its SLURM allocation
    through srun (deepen/train/launch.py). The main process writes the results."""
    from deepen.train.trainer import prepare_run

    nproc, nodes = cfg.get("nproc", 1), cfg.get("nodes", 1)
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
                         tokenizer=None, threads=1) -> None:
    """CPT of one model on token streams: the layers the plan added train under ``new_only``."""
    from deepen.models.model_dir import read_model_config
    from deepen.models.model_dir import check_model_dir
    from deepen.models.modeling import count_parameters, load_causal_lm
    from deepen.train.trainer import train

    config = read_model_config(model_dir)
    check_model_dir(model_dir, architecture_for(config.get("model_type", "")), config)
    model = load_causal_lm(model_dir)  # train() sets the attention kernel
    plan_path = Path(model_dir) / "deepen_plan.json"
    plan_info = plans.load(plan_path) if plan_path.exists() else {"plan": [], "generator": ""}
    added = plans.added_layers(plan_info["plan"])
    flops = training_flops_per_token(model.config.to_dict(), cfg["seq_len"], added, cfg["freeze"])
    result = train(model, tokenizer, train_tokens, val_tokens, cfg, work_dir, final_dir, trainable_layers=added,
                   threads=threads)
    if not is_main_process():
        return
    write_json({"method": method, "generator": plan_info.get("generator", ""), "freeze": cfg["freeze"],
                "processes": world_size(), "nodes": cfg.get("nodes", 1),
                "seed": cfg["seed"], "layers": model.config.num_hidden_layers, "params": count_parameters(model),
                "added_layers": added, "train_flops_per_token": flops,
                "tokens_per_step": cfg["batch_size"] * cfg["seq_len"], **result}, info_path)


def tasks_stage(test_txt, out_dir, eval_cfg: dict) -> None:
    with atomic_dir(out_dir) as tmp:
        build_task_data(test_txt, tmp, eval_cfg)


def evaluate_stage(model_dir, templates_dir, data_dir, eval_cfg: dict, out_path, threads=1) -> None:
    write_json(evaluate(model_dir, templates_dir, data_dir, eval_cfg, threads), out_path)


def continuity_stage(svd_paths: dict[str, str], png_path, json_path) -> None:
    from deepen.expand.lesa.continuity import plot_continuity

    write_json(plot_continuity(svd_paths, png_path), json_path)
