"""Every tensor stage on an accelerator against its CPU result, on a real base (SmolLM2 in the GPU run): the SVD,
a predictor epoch, OT alignment, generation, a step-0 loss and the seams. Used by ``smollm2_gpu.py run``; each
check's figures go to the JSON file as soon as it finishes, so a run cut off keeps those done.

Tolerances, and why:

* SVD: the GPU route accumulates the Gram matrix in float64 (the CPU's in float32 with a symmetric update): singular
  values equal within 1e-6 relative (largest difference over all values).
* predictor: one epoch in float32 with TF32 off on both; the sums run in another order, so the weights drift by
  rounding only: 1e-3 relative (largest difference over the weights, against the largest weight).
* alignment: float64 cost matrices, assignments on the CPU: the same permutations (share of equal entries 1.0).
* generation (OpT-DeUS): the same plans fused in float32: 1e-4 relative.
* step-0 loss and seams: bf16 on a GPU against float32 on the CPU: 0.02 nats for the loss, 0.02 nats for each
  added layer's skip delta. On a CPU-only machine both sides are float32 and the checks are exact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

OPT_DEUS = {"generator": "opt_deus", "placement": "top_half", "solver": "emd", "attention": "heads", "mlp": "joint",
            "zero_init": False}
TOLERANCE = {"svd": 1e-6, "predictor": 1e-3, "alignment": 1.0, "generation": 1e-4, "step0_loss": 0.02,
             "seams": 0.02}
SEAM_TOKENS = 2048  # at most: a pass per added layer on each device is kept short, the same tokens on both


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def check_svd(weights: Path, work: Path, device) -> dict:
    from deepen.expand.lesa.svd import svd_stage

    cpu, t_cpu = _timed(svd_stage, weights / "gate_proj.safetensors", work / "cpu.safetensors", work / "cpu.json")
    dev, t_dev = _timed(svd_stage, weights / "gate_proj.safetensors", work / "dev.safetensors", work / "dev.json",
                        device=device, float64_gram=True)
    from safetensors.numpy import load_file

    s_cpu, s_dev = load_file(work / "cpu.safetensors")["S"], load_file(work / "dev.safetensors")["S"]
    return {"matrix": "gate_proj", "max_relative_difference": float(np.max(np.abs(s_cpu - s_dev) / s_cpu)),
            "reconstruction_error": [cpu["max_relative_reconstruction_error"],
                                     dev["max_relative_reconstruction_error"]],
            "seconds": [t_cpu, t_dev], "measure": "singular values, largest relative difference"}


def check_predictor(svd_dir: Path, device) -> dict:
    from deepen.expand.lesa.predictor import BlockSource, train_predictor

    cfg = {"hidden": 256, "lr": 1e-3, "batch_size": 64, "epochs": 1, "norm_weight": 5e-4, "seed": 0}
    source = BlockSource(svd_dir / "cpu.safetensors", "V")
    (cpu, report_cpu), t_cpu = _timed(train_predictor, source, cfg, lambda s: None)
    (dev, report_dev), t_dev = _timed(train_predictor, source, cfg, lambda s: None, device=device)
    a, b = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (cpu, dev))
    return {"max_relative_difference": float((a - b).abs().max() / a.abs().max()),
            "train_loss": [report_cpu["train_loss"][-1], report_dev["train_loss"][-1]], "seconds": [t_cpu, t_dev],
            "measure": "predictor weights after one epoch, largest difference / largest weight"}


def check_alignment(base: Path, device) -> dict:
    from deepen.expand.align import alignment_plan
    from deepen.models.families import family_for
    from deepen.models.model_dir import read_model_config
    from deepen.models.model_dir import check_model_dir

    config = read_model_config(base)
    arch = family_for(config["model_type"])
    reader = check_model_dir(base, arch, config)
    (cpu, _), t_cpu = _timed(alignment_plan, reader, arch, config)
    (dev, _), t_dev = _timed(alignment_plan, reader, arch, config, device=device)
    entries = [(x, y) for p, q in zip(cpu, dev) for field in ("heads", "groups", "neurons")
               for x, y in zip(getattr(p, field), getattr(q, field))]
    return {"share_equal": sum(x == y for x, y in entries) / len(entries), "seconds": [t_cpu, t_dev],
            "measure": "permutation entries equal on both devices"}


def check_generation(base: Path, weights: Path, work: Path, device) -> dict:
    from safetensors.torch import load_file

    from deepen.expand.execute import generate_stage

    _, t_cpu = _timed(generate_stage, "opt_deus", OPT_DEUS, base, weights, work / "cpu", device="cpu")
    _, t_dev = _timed(generate_stage, "opt_deus", OPT_DEUS, base, weights, work / "dev", device=device.type)
    a, b = (load_file(work / side / "new_layers.safetensors") for side in ("cpu", "dev"))
    worst = max(float((a[k].float() - b[k].float()).abs().max() / a[k].float().abs().max().clamp_min(1e-30))
                for k in a)
    return {"method": "opt_deus", "layers": len({k.split(".")[1] for k in a}), "max_relative_difference": worst,
            "seconds": [t_cpu, t_dev], "measure": "new layers, largest difference / largest value, worst tensor"}


def check_losses(base: Path, work: Path, val_tokens: np.ndarray, fixed_slice: dict, device) -> tuple[dict, dict]:
    """The step-0 loss of the base on the fixed slice (cpt's seq_len, eval_tokens, batch_size) and the seams of
    the OpT-DeUS expansion (generated above) on both devices."""
    from deepen.expand import plan as plans
    from deepen.core.device import evaluation_dtype
    from deepen.models.modeling import load_causal_lm
    from deepen.expand.reconstruct import reconstruct_stage
    from deepen.evaluate.seams import seam_diagnostics
    from deepen.train.trainer import fixed_slice_loss

    val_tokens = np.asarray(val_tokens, dtype=np.int64)
    seq, batch = fixed_slice["seq_len"], fixed_slice["batch_size"]
    args = (val_tokens, seq, fixed_slice["eval_tokens"], batch)
    losses, seconds = [], []
    for on in (torch.device("cpu"), device):
        model = load_causal_lm(base, on, evaluation_dtype(on))
        result, t = _timed(fixed_slice_loss, model, *args)
        losses.append(result["val_loss"])
        seconds.append(t)
        del model
    step0 = {"val_loss": losses, "difference": abs(losses[0] - losses[1]), "seconds": seconds,
             "dtypes": ["float32", str(evaluation_dtype(device)).removeprefix("torch.")],
             "measure": "val loss of the base on the fixed slice, absolute difference (nats)"}
    layers = work / "generation" / "cpu"
    model_dir = work / "opt_deus_model"
    if not (model_dir / "config.json").exists():
        reconstruct_stage("opt_deus", base, base, layers / "plan.json", layers / "new_layers.safetensors", model_dir,
                          1 << 20)
    plan = plans.load(layers / "plan.json")["plan"]
    deltas, seconds = [], []
    for on in (torch.device("cpu"), device):
        model = load_causal_lm(model_dir, on, evaluation_dtype(on))
        result, t = _timed(seam_diagnostics, model, plan, val_tokens, seq,
                           max(seq, min(SEAM_TOKENS, fixed_slice["eval_tokens"])), batch)
        deltas.append([row["skip_loss_delta"] for row in result["layers"] if row["added"]])
        seconds.append(t)
        del model
    seams = {"skip_loss_delta": deltas, "difference": float(np.max(np.abs(np.subtract(*deltas)))),
             "seconds": seconds, "measure": "each added layer's skip delta, largest absolute difference (nats)"}
    return step0, seams


def run_checks(base: Path, weights: Path, val_tokens: np.ndarray, fixed_slice: dict, work: Path, out: Path,
               device) -> dict:
    """Every check, in order; ``out`` rewritten after each. A check that raises is recorded as failed and the next
    one runs."""
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": str(device),
                     "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                     "tolerance": TOLERANCE, "checks": {}}

    def record(name: str, fn, value_key: str, at_most: bool = True):
        try:
            r = fn()
        except Exception as e:  # one failed check must not lose the others
            results["checks"][name] = {"error": f"{type(e).__name__}: {e}", "passed": False}
        else:
            value = r[value_key]
            r["passed"] = bool(value <= TOLERANCE[name] if at_most else value >= TOLERANCE[name])
            results["checks"][name] = r
        out.write_text(json.dumps(results, indent=1))
        print(f"check {name}: {results['checks'][name]}", flush=True)

    (work / "svd").mkdir(parents=True, exist_ok=True)
    record("svd", lambda: check_svd(weights, work / "svd", device), "max_relative_difference")
    record("predictor", lambda: check_predictor(work / "svd", device), "max_relative_difference")
    record("alignment", lambda: check_alignment(base, device), "share_equal", at_most=False)
    record("generation", lambda: check_generation(base, weights, work / "generation", device),
           "max_relative_difference")
    pair: dict = {}

    def losses():
        pair["step0"], pair["seams"] = check_losses(base, work, val_tokens, fixed_slice, device)
        return pair["step0"]

    record("step0_loss", losses, "difference")
    record("seams", lambda: pair["seams"], "difference")
    results["all_passed"] = all(c["passed"] for c in results["checks"].values())
    out.write_text(json.dumps(results, indent=1))
    return results
