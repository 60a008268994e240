"""Helpers shared by the benchmark scripts: a random Llama on disk, peak RSS, machine description."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"


def parse_options(doc: str, argv=None, **defaults):
    """Command-line options from their defaults (``name=default``: the option --name, underscores as dashes, of the
    default's type; None: a string)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in defaults.items():
        ap.add_argument("--" + name.replace("_", "-"), type=str if default is None else type(default), default=default)
    return ap.parse_args(argv)


def add_shape_arguments(ap) -> None:
    """The model shape options, defaulting to Llama-3.2-1B's."""
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--threads", type=int, default=2)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_llama(path, hidden, intermediate, layers, heads, kv_heads, vocab, dtype=torch.bfloat16,
                 shard_mb=2048) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=2048, tie_word_embeddings=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model = model.to_empty(device="cpu").to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(path, max_shard_size=f"{shard_mb}MB")


HERE = Path(__file__).resolve().parent

# Each stage runs in a fresh interpreter so that its peak RSS is its own. The clock covers ``code`` only:
# interpreter start-up, torch's import and ``setup`` (imports, loading inputs) are outside it, and
# ``setup``'s own time is reported as setup_seconds.
STAGE_CODE = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r}); sys.path.insert(0, {here!r})
import torch
torch.set_num_threads({threads})
_bench_args = json.loads({args!r})
# Peak memory of this process's own pages: ru_maxrss survives exec (a child started by a large parent reports the
# parent's size) and counts mapped file pages; RssAnon, sampled every 2 ms, is what the stage allocated.
import threading
_bench_anon = [0]
def _bench_sample():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                _bench_anon[0] = max(_bench_anon[0], int(line.split()[1]))
        time.sleep(0.002)
threading.Thread(target=_bench_sample, daemon=True).start()
_bench_start = time.perf_counter()
exec(_bench_args["setup"])
_bench_setup = time.perf_counter() - _bench_start
_bench_start = time.perf_counter()
exec(_bench_args["code"])
_bench_seconds = time.perf_counter() - _bench_start
_bench_hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
time.sleep(0.01)
print(json.dumps({{"seconds": _bench_seconds, "setup_seconds": _bench_setup, "peak_rss_mb": _bench_hwm / 1024,
                  "peak_anon_mb": _bench_anon[0] / 1024}}))
"""


def run_stage(name: str, code: str, threads: int, results: dict, setup: str = "") -> dict:
    """Run ``setup`` then ``code`` in their own process; record and print the wall time of ``code``, its
    peak RSS, and any other numbers it prints as JSON lines."""
    src = STAGE_CODE.format(repo=str(HERE.parent), here=str(HERE), threads=threads,
                            args=json.dumps({"setup": setup, "code": code}))
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"stage {name} failed:\n{proc.stderr[-3000:]}")
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            out.update(json.loads(line))
    if not setup:
        del out["setup_seconds"]
    results[name] = out
    extra = "".join(f"   {k} {v:.2f}" for k, v in out.items() if k not in ("seconds", "peak_rss_mb", "peak_anon_mb"))
    print(f"{name:40s} {out['seconds']:8.2f} s   peak RSS {out['peak_rss_mb'] / 1024:6.2f} GiB{extra}", flush=True)
    return out
