"""benchmarks/smollm2_gpu.py at a tiny size on CPU: `prepare` here, then `run` in a process that cannot import
POT, gguf, lm-eval, jsonschema or Snakemake (a GPU machine need not have them), with a report at the end."""

import json
import os
import subprocess
import sys

import torch
import yaml
from transformers import AutoTokenizer

from conftest import REPO
from deepen.data.tokenizer import train_tokenizer
from gguf_writer import write_gguf
from test_gguf_import import TEXT, family_model

BLOCKER = '''
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"ot", "gguf", "lm_eval", "jsonschema", "snakemake"}:
            raise ImportError(f"{name} is not installed on this machine")
sys.meta_path.insert(0, Block())
'''


def test_gpu_runner_prepares_here_and_runs_without_the_workflow_packages(tmp_path):
    (tmp_path / "tok_text.txt").write_text(TEXT)
    train_tokenizer(tmp_path / "tok_text.txt", 300, tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    gguf = write_gguf(family_model("llama", len(tok)), tmp_path / "tok", tmp_path / "tiny.gguf")
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"doc{i}.txt").write_text(TEXT[i * 500:] * 2)
    config = {
        "base_model": {"gguf": str(gguf)}, "corpus": {"source": "files", "path": str(docs), "val": 1, "test": 1},
        "cpt": {"seeds": 2, "steps": 4, "batch_size": 4, "seq_len": 32, "lr": 1e-3, "eval_interval": 2,
                "eval_tokens": 256, "checkpoint_interval": 4},
        "methods": {"llama_pro": {"generator": "copy", "placement": {"interval": 2}, "zero_init": True},
                    "lesa": {"generator": "lesa"}, "opt_deus": {"generator": "opt_deus", "zero_init": True}},
        "predictor": {"hidden": 16, "epochs": 1}, "report": {"target_loss": "llama_pro", "reference": "llama_pro"},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    script = str(REPO / "benchmarks/smollm2_gpu.py")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    subprocess.run([sys.executable, script, "prepare", "--config", str(tmp_path / "tiny.yaml"), "--out",
                    str(tmp_path / "run"), "--part-mb", "1"], check=True, capture_output=True, timeout=600)
    assert len(list((tmp_path / "run").glob("base.gguf.part*"))) >= 1
    # the parts travel separately: move one to another folder, as a second transfer would bring it
    (tmp_path / "later").mkdir()
    (tmp_path / "run" / "base.gguf.part0").rename(tmp_path / "later" / "base.gguf.part0")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCKER)
    def run(name, *only, **more_env):
        return subprocess.run([sys.executable, script, "run", "--dir", str(tmp_path / "run"), "--parts",
                               str(tmp_path / "later"), "--work", str(tmp_path / name), "--out",
                               str(tmp_path / f"{name}_out"), "--parallel", "1", "--threads", "1",
                               *(["--only", *only] if only else [])],
                              env={**env, "MASTER_PORT": "29533", **more_env}, capture_output=True, text=True,
                              timeout=900)

    # every part; one CPT run fails: the others finish, the report has them, the failure is recorded
    proc = run("work", DEEPEN_GPU_RUNNER_FAIL="opt_deus/new_only/seed1")
    out = tmp_path / "work_out"
    assert proc.returncode == 0, proc.stdout[-3000:] + (out / "run.log").read_text()[-3000:]
    parts = json.loads((out / "parts.json").read_text())
    assert [(p, s["status"]) for p, s in parts.items()] == [("checks", "done"), ("throughput", "done"),
                                                            ("comparison", "done")]
    # the terminal gets a line per part; the rest goes to the log
    assert "part comparison" in proc.stdout and "Running" not in proc.stdout and "[" not in proc.stdout
    assert "import GGUF" in (out / "run.log").read_text()
    # (a) each tensor stage on the second device against the CPU: on a CPU-only machine both are the CPU, and the
    # SVD still compares its two routes (float32 symmetric update, float64 Gram)
    checks = json.loads((out / "device_checks.json").read_text())
    assert list(checks["checks"]) == ["svd", "predictor", "alignment", "generation", "step0_loss", "seams"]
    assert checks["all_passed"], checks
    assert 0 < checks["checks"]["svd"]["max_relative_difference"] <= 1e-6
    assert checks["checks"]["step0_loss"]["difference"] == 0 and checks["checks"]["alignment"]["share_equal"] == 1
    # (b) throughput of every setting and the measured matmul rate
    throughput = json.loads((out / "cpt_throughput.json").read_text())
    assert len(throughput["settings"]) == 5 and throughput["bf16_matmul_flops_per_s"] > 0
    # (c) the comparison
    comparison = out / "comparison"
    assert "opt_deus/new_only/seed1" in json.loads((comparison / "failures.json").read_text())
    md = (comparison / "summary.md").read_text()
    for row in ("base/all", "llama_pro/new_only", "lesa/new_only"):
        assert f"| `{row}` | 2 |" in md
    assert "| `opt_deus/new_only` | 1 |" in md
    assert (tmp_path / "work/cpt/lesa/new_only/seed0/log.txt").exists()
    assert "## Step 0: every model before training" in md and "The papers' claims" in md
    timings = json.loads((comparison / "timings.json").read_text())
    assert {"import GGUF", "svd gate_proj", "report"} <= set(timings) and timings["tokens"]["train"] > 0
    assert (comparison / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    # this config names no standard benchmark: said, not silently left out
    assert not json.loads((comparison / "benchmarks.json").read_text())["scored"]
    assert torch.cuda.is_available() or "device: cpu" in (out / "run.log").read_text()
    # a part that fails: the next one still runs
    proc = run("failing", "checks", "throughput", DEEPEN_GPU_RUNNER_FAIL="checks")
    assert proc.returncode == 0, proc.stdout[-3000:]
    parts = json.loads((tmp_path / "failing_out/parts.json").read_text())
    assert parts["checks"]["status"] == "failed" and "on purpose" in parts["checks"]["error"]
    assert parts["throughput"]["status"] == "done"
    # cut off after three CPT runs, as a time limit would: the report of what finished is there
    proc = run("cut", "comparison", DEEPEN_GPU_RUNNER_KILL_AFTER="3")
    assert proc.returncode == 137, proc.stdout[-3000:]
    md = (tmp_path / "cut_out/comparison/summary.md").read_text()
    assert "| `base/all` | 2 |" in md and "| `llama_pro/new_only` | 1 |" in md and "lesa/new_only" not in md
    assert json.loads((tmp_path / "cut_out/parts.json").read_text())["comparison"]["status"] == "running"


def test_gpu_cpt_benchmark_runs_every_setting_at_a_tiny_size_on_cpu():
    """benchmarks/gpu_cpt.py --tiny: the code a GPU run uses (bf16 frozen linears, checkpointing, FSDP2 over a
    one-process group), on the CPU; speed is not the point here."""
    import math

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_cpt.py"), "--tiny"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "MASTER_PORT": "29531"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(r["policy"], r["checkpointing"], r["fsdp"]) for r in results] == [
        ("new_only", False, False), ("new_only", True, False), ("all", False, False), ("all", True, False),
        ("new_only", False, True)]
    assert all(math.isfinite(r["loss"]) and r["tokens_per_s"] > 0 for r in results)
    # checkpointing recomputes, it does not change the loss; all trains more parameters than new_only
    assert results[0]["loss"] == results[1]["loss"] and results[2]["trainable"] > results[0]["trainable"]


def test_the_gpu_runner_refuses_what_it_would_make_differently_from_the_workflow():
    """It has no aligned base, no leave-one-out fits and no layer profile: such methods are refused by name, not run
    on the plain base."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from smollm2_gpu import unsupported_methods

    config = {"methods": {"llama_pro": {"generator": "copy", "placement": {"interval": 2}, "zero_init": True},
                          "lesa": {"generator": "lesa"},
                          "lesa_aligned": {"generator": "lesa", "align": True},
                          "lesa_calibrated": {"generator": "lesa", "shrink": "auto"},
                          "opt_deus_auto": {"generator": "opt_deus", "placement": {"auto": 4}}}}
    refused = unsupported_methods(config)
    assert [r.split(":")[0] for r in refused] == ["methods.lesa_aligned", "methods.lesa_calibrated",
                                                  "methods.opt_deus_auto"]
    assert "align: true" in refused[0] and "shrink: auto" in refused[1] and "auto" in refused[2]
    gpu = yaml.safe_load((REPO / "config/smollm2_gpu.yaml").read_text())
    assert unsupported_methods(gpu) == []
