"""The stage cost model (deepen/workflow/stage_costs.py) against CPU measurements at two sizes, and the docs'
stage-cost table.

    python benchmarks/stage_costs.py --workdir /tmp/stage_costs --table docs/stage_costs.md

For each of two random Llama shapes (40 M parameters and SmolLM2-135M's), every tensor stage runs in its own process
(benchmarks/common.py: its peak RSS is its own) on the stage's own code: extraction, SVD of k_proj and gate_proj
(the CPU route), one predictor epoch, the aligned base, OpT-DeUS generation, a step-0 loss over a fixed slice, two
CPT steps. Printed per stage: the rate its measured seconds imply for the model's FLOPs (once its serial
assignment operations and its bytes are taken off at their measured rates), and the modelled against the measured
peak anonymous memory. The model holds when a stage's rate is
about the same at both sizes (its work grows as the model says) and no measured peak exceeds the modelled one.

The table (``--table``) gives each stage's cost for SmolLM2, the Llama-3.2-1B shape and the 8B config
(config/llama8b_slurm.yaml): per job and in all, on a 2-core CPU (the rates measured here, at the larger size),
on a node's 64 cores (those rates × 32: optimistic, CPU products rarely scale that well) and on one H100 (see
``H100`` below).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from common import machine, random_llama, run_stage  # noqa: E402
from deepen.workflow import stage_costs as sc  # noqa: E402

SMOLLM2 = dict(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, vocab=49152)
SHAPES = {"40M": dict(hidden=384, intermediate=1024, layers=16, heads=6, kv_heads=2, vocab=16384),
          "SmolLM2-135M": SMOLLM2}
EVAL = dict(tokens=8192, seq_len=256, batch=8)
TRAIN = dict(steps=2, batch=4, seq_len=256)
PREDICTOR = dict(hidden=256, lr=1e-3, batch_size=64, epochs=1, norm_weight=5e-4, seed=0)
OPT_DEUS = dict(generator="opt_deus", placement="top_half", solver="emd", attention="heads", mlp="joint",
                zero_init=True)

# One H100 SXM (datasheet, dense): bf16 989 TFLOP/s, float32 and float64 (tensor cores) 67 TFLOP/s. CPT and
# evaluation run in bf16 at the MFU measured for CPT on an H200 (the same compute peak: 36.7%, benchmarks/README);
# the float32/float64 stages at the share of the CPU's float32 matmul ceiling that they reach here (measured below).
H100 = {"bf16": 989e12, "float": 67e12, "bf16_mfu": 0.367, "io": 2e9}
NODE_CORE_FACTOR = 32
SERIAL_OPS_PER_SECOND_FALLBACK = 1e9


def shape_config(s: dict) -> dict:
    return {"num_hidden_layers": s["layers"], "hidden_size": s["hidden"], "intermediate_size": s["intermediate"],
            "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"], "vocab_size": s["vocab"]}


def modelled(shape: sc.Shape) -> dict[str, sc.StageCost]:
    from deepen.expand.methods import build_plan
    from deepen.expand.plan import added_layers

    plan = build_plan(OPT_DEUS, shape.layers)
    added = added_layers(plan)
    new = len(added)
    return {
        "extract_weights": sc.extract_cost(shape),
        "svd k_proj": sc.svd_cost(shape, "k_proj"),
        "svd gate_proj": sc.svd_cost(shape, "gate_proj"),
        "predictor gate_proj": sc.predictor_cost(shape, "gate_proj", PREDICTOR),
        "align_base": sc.align_cost(shape),
        "generate opt_deus": sc.generate_cost(shape, "opt_deus", new),
        "init_loss": sc.loss_cost("init_loss", shape, shape.layers, EVAL["tokens"], EVAL["seq_len"], EVAL["batch"]),
        "cpt all": sc.cpt_cost(shape, len(plan), added, "all",
                               {"steps": TRAIN["steps"], "batch_size": TRAIN["batch"], "seq_len": TRAIN["seq_len"]}),
    }


def stage_code(work: Path, s: dict) -> dict[str, tuple[str, str]]:
    """(setup, code) of each measured stage."""
    base, weights = str(work / "base"), str(work / "weights")
    tokens = f"np.random.default_rng(0).integers(0, {s['vocab']}, 1_000_000).astype(np.int64)"
    matrices = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                "input_layernorm", "post_attention_layernorm"]
    return {
        "extract_weights": ("from deepen.expand.weights import extract_stage",
                            f"for m in {matrices!r}: extract_stage({base!r}, m, {weights!r} + f'/{{m}}.safetensors')"),
        "svd k_proj": ("from deepen.expand.lesa.svd import svd_stage",
                       f"svd_stage({weights!r} + '/k_proj.safetensors', {str(work)!r} + '/svd/k_proj.safetensors', "
                       f"{str(work)!r} + '/svd/k_proj.json')"),
        "svd gate_proj": ("from deepen.expand.lesa.svd import svd_stage",
                          f"svd_stage({weights!r} + '/gate_proj.safetensors', "
                          f"{str(work)!r} + '/svd/gate_proj.safetensors', {str(work)!r} + '/svd/gate_proj.json')"),
        "predictor gate_proj": ("from deepen.expand.lesa.predictor import BlockSource, train_predictor\n"
                                f"source = BlockSource({str(work)!r} + '/svd/gate_proj.safetensors', 'V')",
                                f"train_predictor(source, {PREDICTOR!r}, log=lambda s: None)"),
        "align_base": ("from deepen.expand.align import align_base",
                       f"align_base({base!r}, {str(work)!r} + '/aligned')"),
        "generate opt_deus": ("from deepen.expand.execute import generate_stage",
                              f"generate_stage('opt_deus', {OPT_DEUS!r}, {base!r}, {weights!r}, "
                              f"{str(work)!r} + '/layers/opt_deus', device='cpu')"),
        "init_loss": ("import numpy as np\nfrom deepen.models.modeling import load_causal_lm\n"
                      "from deepen.train.trainer import fixed_slice_loss\n"
                      f"model = load_causal_lm({base!r}, torch.device('cpu'), torch.float32)\ntokens = {tokens}",
                      f"fixed_slice_loss(model, tokens, {EVAL['seq_len']}, {EVAL['tokens']}, {EVAL['batch']})"),
        # the expanded model's shape (top half: base + half its layers), all trained, float32 AdamW
        "cpt all": ("from transformers import LlamaConfig, LlamaForCausalLM\n"
                    f"torch.manual_seed(0)\nconfig = LlamaConfig.from_pretrained({base!r})\n"
                    f"config.num_hidden_layers = {s['layers'] + s['layers'] // 2}\n"
                    "config._attn_implementation = 'sdpa'\n"
                    "model = LlamaForCausalLM(config).float().train()\n"
                    "opt = torch.optim.AdamW(model.parameters(), lr=1e-4)\n"
                    f"batch = torch.randint(0, {s['vocab']}, ({TRAIN['batch']}, {TRAIN['seq_len']}))",
                    f"for _ in range({TRAIN['steps']}):\n"
                    "    model(input_ids=batch, labels=batch).loss.backward(); opt.step(); opt.zero_grad()"),
    }


MATMUL_CODE = """
a = torch.randn(2048, 2048); b = torch.randn(2048, 2048)
a @ b
t = time.perf_counter()
for _ in range(10): a @ b
print(json.dumps({"matmul_flops_per_second": 10 * 2 * 2048**3 / (time.perf_counter() - t)}))
"""
SERIAL_CODE = """
import numpy as np
from scipy.optimize import linear_sum_assignment
cost = np.random.default_rng(0).standard_normal((1536, 1536))
t = time.perf_counter()
linear_sum_assignment(cost)
print(json.dumps({"serial_ops_per_second": 1536**3 / (time.perf_counter() - t)}))
"""


def measure(workdir: Path, threads: int) -> dict:
    results = {"machine": machine(), "threads": threads, "sizes": {}}
    ceiling: dict = {}
    run_stage("float32 matmul 2048³ (ceiling)", MATMUL_CODE, threads, ceiling)
    run_stage("assignment 1536×1536 (one core)", SERIAL_CODE, 1, ceiling)
    empty: dict = {}
    # the baseline of a stage process: torch, transformers, scipy and deepen's stage modules imported
    run_stage("interpreter (imports)",
              "import transformers, scipy.optimize, deepen.expand.execute, deepen.evaluate.step0, deepen.expand.align",
              threads, empty)
    results["matmul_flops_per_second"] = ceiling["float32 matmul 2048³ (ceiling)"]["matmul_flops_per_second"]
    results["serial_ops_per_second"] = ceiling["assignment 1536×1536 (one core)"]["serial_ops_per_second"]
    results["interpreter_mb"] = empty["interpreter (imports)"]["peak_anon_mb"]
    for size, s in SHAPES.items():
        work = workdir / size
        if not (work / "base" / "config.json").exists():
            random_llama(work / "base", s["hidden"], s["intermediate"], s["layers"], s["heads"], s["kv_heads"],
                         s["vocab"], dtype=__import__("torch").float32)
        shape = sc.Shape.of(shape_config(s))
        costs, measured = modelled(shape), {}
        print(f"\n{size}: {shape.params() / 1e6:.0f} M parameters")
        for stage, (setup, code) in stage_code(work, s).items():
            run_stage(f"{size} {stage}", code, threads, measured, setup)
        results["sizes"][size] = {
            stage: {**costs[stage].__dict__, "seconds": measured[f"{size} {stage}"]["seconds"],
                    "peak_rss_mb": measured[f"{size} {stage}"]["peak_rss_mb"],
                    "peak_anon_mb": measured[f"{size} {stage}"]["peak_anon_mb"]} for stage in costs}
    return results


def implied_rate(row: dict, serial_rate: float, io_rate: float) -> float:
    """FLOP/s a stage reached: its FLOPs over the seconds left when its serial operations and bytes are taken off."""
    rest = row["seconds"] - row["serial_ops"] / serial_rate - (row["bytes_read"] + row["bytes_written"]) / io_rate
    return row["flops"] / rest if row["flops"] and rest > 0 else float("nan")


def io_rate(results: dict) -> float:
    big = results["sizes"][list(SHAPES)[-1]]["extract_weights"]
    return (big["bytes_read"] + big["bytes_written"]) / big["seconds"]


def with_model(results: dict) -> dict:
    """``results`` with each stage's modelled cost as deepen/workflow/stage_costs.py gives it now (not when
    measured)."""
    for size, s in SHAPES.items():
        for stage, cost in modelled(sc.Shape.of(shape_config(s))).items():
            results["sizes"][size][stage].update(cost.__dict__)
    return results


def print_check(results: dict) -> None:
    io = io_rate(results)
    serial = results["serial_ops_per_second"]
    print(f"\nfloat32 matmul ceiling {results['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s; assignment "
          f"{serial / 1e9:.2f} G ops/s (one core); streaming {io / 1e6:.0f} MB/s (extraction); interpreter "
          f"{results['interpreter_mb']:.0f} MB")
    header = f"{'stage':22s}" + "".join(f"{size + ' GFLOP/s':>22s}" for size in SHAPES)
    header += "".join(f"{size + ' peak model/meas MB':>34s}" for size in SHAPES)
    print("peak: the model's tensors plus the interpreter's measured anonymous memory, against the stage's peak "
          "anonymous memory (file pages mapped from the checkpoints are left out: the kernel reclaims them)")
    print(header)
    for stage in results["sizes"][list(SHAPES)[0]]:
        line = f"{stage:22s}"
        for size in SHAPES:
            rate = implied_rate(results["sizes"][size][stage], serial, io)
            line += f"{rate / 1e9:22.1f}" if not math.isnan(rate) else f"{'(bytes)':>22s}"
        for size in SHAPES:
            row = results["sizes"][size][stage]
            model = row["peak_bytes"] / 2**20 + results["interpreter_mb"]
            line += f"{model:24.0f} / {row['peak_anon_mb']:7.0f}"
        print(line)


def calibrated_rates(results: dict) -> dict:
    """Per stage, the FLOP/s measured at the larger size; the float32 ones' share of the matmul ceiling."""
    big = results["sizes"][list(SHAPES)[-1]]
    io, serial = io_rate(results), results["serial_ops_per_second"]
    rate = {stage: implied_rate(row, serial, io) for stage, row in big.items()}
    by_stage = {"svd": rate["svd gate_proj"], "predictor": rate["predictor gate_proj"],
                "predictor_heldout": rate["predictor gate_proj"], "align_base": rate["align_base"],
                "generate_layers": rate["generate opt_deus"], "init_loss": rate["init_loss"], "seams": rate["init_loss"],
                "evaluate": rate["init_loss"], "continual_pretrain": rate["cpt all"]}
    return {"cpu": by_stage, "io": io, "serial": serial,
            "efficiency": {k: v / results["matmul_flops_per_second"] for k, v in by_stage.items()}}


LLAMA_1B = dict(hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8, vocab=128256)
LLAMA_8B = dict(hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8, vocab=128256)
BF16_STAGES = ("init_loss", "seams", "evaluate", "continual_pretrain")


def config_for(path: str) -> dict:
    import yaml

    from deepen.workflow.config_check import default_filling_validator

    config = yaml.safe_load((REPO / "config/toy.yaml").read_text())
    if path != "config/toy.yaml":
        config.update(yaml.safe_load((REPO / path).read_text()))
    default_filling_validator()(yaml.safe_load((REPO / "config/schema.yaml").read_text())).validate(config)
    return config


def seconds_on(cost: sc.StageCost, stage: str, where: str, rates: dict) -> float:
    serial = cost.serial_ops / rates["serial"]
    if where == "cpu":
        return cost.flops / rates["cpu"][stage] + (cost.bytes_read + cost.bytes_written) / rates["io"] + serial \
            if cost.flops else (cost.bytes_read + cost.bytes_written) / rates["io"]
    if where == "node":
        flops = cost.flops / (rates["cpu"][stage] * NODE_CORE_FACTOR) if cost.flops else 0.0
        return flops + (cost.bytes_read + cost.bytes_written) / H100["io"] + serial
    if not cost.accelerated or not cost.flops:
        return (cost.bytes_read + cost.bytes_written) / H100["io"]
    rate = H100["bf16"] * H100["bf16_mfu"] if stage in BF16_STAGES else H100["float"] * rates["efficiency"][stage]
    return cost.flops / rate + (cost.bytes_read + cost.bytes_written) / H100["io"] + serial


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else "< 1 s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def table(results: dict, out: Path) -> None:
    from deepen.evaluate.harness import embedded_task_names

    rates = calibrated_rates(results)
    embedded = list(embedded_task_names(REPO / "config/tasks"))
    models = [("SmolLM2-135M (config/smollm2.yaml)", "config/smollm2.yaml", SMOLLM2, 2),
              ("Llama-3.2-1B shape (config/smollm2.yaml's methods and CPT)", "config/smollm2.yaml", LLAMA_1B, 2),
              ("Llama-3.1-8B (config/llama8b_slurm.yaml)", "config/llama8b_slurm.yaml", LLAMA_8B, 2)]
    eff = rates["efficiency"]
    lines = [
        "# What each stage costs", "",
        "deepen's cost model (`deepen/workflow/stage_costs.py`) gives each stage's FLOPs, bytes read and written and "
        "peak memory "
        "from the model's shape and the config, without touching a tensor. The rules ask SLURM for the run time and "
        "memory it gives (`resources.train_flops_per_second`, `resources.io_bytes_per_second`, "
        "`resources.runtime_safety`), so a bigger model or a longer run asks for more without editing a rule.", "",
        "This page is written by `python benchmarks/stage_costs.py --workdir /tmp/stage_costs --table "
        "docs/stage_costs.md`, which first checks the model against measurements of the stages' own code at two "
        f"sizes on {results['machine']} (benchmarks/README.md has the check). The times below are estimates:", "",
        "- **2-core CPU**: each stage's FLOPs at the rate that stage reached in that measurement (SmolLM2's shape), "
        "its bytes at the measured streaming rate, its exact assignments at the measured one-core rate;",
        f"- **64-core node**: the same rates × {NODE_CORE_FACTOR} (optimistic: CPU products rarely scale so well), "
        "bytes at 2 GB/s;",
        "- **one H100**: CPT, step-0 losses, seams and lm-eval in bf16 at 36.7% of the 989 TFLOP/s datasheet peak "
        "(the MFU measured for CPT at the 1B shape on an H200, whose compute peak is the H100's); the float32 and "
        "float64 stages (SVD, predictors, alignment, generation) at the 67 TFLOP/s datasheet peak times the share of "
        f"the CPU's float32 matmul rate they reached here (SVD {eff['svd']:.0%}, predictor {eff['predictor']:.0%}, "
        f"alignment {eff['align_base']:.0%}, generation {eff['generate_layers']:.0%}): not measured on a GPU; "
        "assignments stay on one CPU core.", "",
        "Peak memory is one process's, float32, unsharded (FSDP divides the training state by the GPUs). A stage's "
        "most expensive job is shown; *jobs* is how many the config runs.", ""]
    node_totals = []
    for title, path, s, weight_bytes in models:
        config = config_for(path)
        costs = sc.workflow_costs(config, shape_config(s), weight_bytes, embedded)
        lines += [f"### {title}", "",
                  "| stage | jobs | per job: TFLOP | GB read + written | peak GB | 2-core CPU | 64-core node | one H100 |"
                  " all jobs, one H100 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for stage, cost in costs.items():
            rate_stage = stage if stage in rates["cpu"] else None
            cpu = seconds_on(cost, rate_stage or "svd", "cpu", rates)
            node = seconds_on(cost, rate_stage or "svd", "node", rates)
            gpu = seconds_on(cost, rate_stage or "svd", "gpu", rates)
            lines.append(f"| {stage} | {cost.jobs} | {cost.flops / 1e12:.3g} | "
                         f"{(cost.bytes_read + cost.bytes_written) / 1e9:.3g} | {cost.peak_bytes / 1e9:.3g} | "
                         f"{duration(cpu)} | {duration(node)} | {duration(gpu)} | {duration(gpu * cost.jobs)} |")
            if "8B" in title:
                node_totals.append((stage, cost, gpu))
        lines.append("")
    lines += ["### The 8B config on one node of 8 H100s", "",
              "Each stage's jobs spread over the 8 GPUs (a stage of fewer jobs than GPUs uses fewer; CPT runs as the "
              "config says, 16 GPUs a run, here the node's 8):", "",
              "| stage | jobs | total on 8 H100s |", "|---|---:|---:|"]
    total = 0.0
    for stage, cost, gpu in node_totals:
        if stage == "continual_pretrain":
            wall = cost.jobs * gpu / 8
        else:
            wall = math.ceil(cost.jobs / 8) * gpu
        total += wall
        lines.append(f"| {stage} | {cost.jobs} | {duration(wall)} |")
    lines += [f"| **all stages** | | **{duration(total)}** |", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--table", help="write the docs' stage-cost table (markdown) here")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results_path = workdir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else measure(workdir, args.threads)
    results_path.write_text(json.dumps(results, indent=1))
    results = with_model(results)
    print_check(results)
    if args.table:
        table(results, Path(args.table))


if __name__ == "__main__":
    main()
