"""CPT throughput of a Llama-3.2-1B-shaped expansion (16 -> 24 layers, random weights) on one GPU: tokens/s and
model FLOPs utilisation for `new_only` and `all`, with and without activation checkpointing, in bf16 mixed
precision (float32 trainable weights, bf16 frozen linears under new_only) with sdpa attention; and one step of
torch's FSDP2 (`fully_shard` of each layer over a one-process group) on one GPU. That step shows the sharding
primitive runs on the device; it is not deepen's training path (the Trainer with an FSDP plugin), which the
distributed tests run on CPU processes.

Needs only torch and transformers (and this checkout, for deepen.train.trainer's freezing and casting and
deepen.models.flops). Sized to finish in a few minutes on one H100/H200:

    python benchmarks/gpu_cpt.py --seq-len 2048 --micro-batch 4 --steps 10 --out cpt_throughput.json
    python benchmarks/gpu_cpt.py --tiny                    # a CPU smoke test of the same code (tests)

MFU counts deepen/models/flops.py's training FLOPs per token (forward, activation gradients down to the lowest
trainable layer, weight gradients of what trains) against the GPU's dense bf16 peak (--peak-tflops; 989 for
an H100/H200 SXM) and against the bf16 matmul rate measured on the same device (8192³ products): the ceiling
a training step could reach. ``--out`` gets every figure as each setting finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deepen.expand import plan as plans  # noqa: E402
from deepen.models.flops import training_flops_per_token  # noqa: E402
from deepen.train.trainer import cast_frozen_linears, freeze  # noqa: E402

SHAPE_1B = dict(hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8,
                vocab_size=128256, tie_word_embeddings=True)
SHAPE_TINY = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                  vocab_size=512, tie_word_embeddings=True)


def build(shape: dict, layers: int, device):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(num_hidden_layers=layers, max_position_embeddings=4096, attn_implementation="sdpa", **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model


def added_layers(base_layers: int) -> list[int]:
    """LLaMA Pro's placement, interval 2: the new layers' positions in the expansion."""
    return plans.added_layers(plans.interleave(base_layers, plans.insertion_points({"interval": 2}, base_layers)))


def measure(model, added, policy, checkpointing, args, device, fsdp=False) -> dict:
    trainable = freeze(model, policy, added)
    if policy == "new_only":
        cast_frozen_linears(model, torch.bfloat16)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=device.type == "cuda")
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (args.micro_batch, args.seq_len), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    steps = 1 if fsdp else args.steps
    for _ in range(1 if fsdp else args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = steps * args.micro_batch * args.seq_len
    flops = training_flops_per_token(model.config.to_dict(), args.seq_len, added, policy) * tokens
    return {"policy": policy, "checkpointing": checkpointing, "fsdp": fsdp, "trainable": trainable,
            "tokens_per_s": tokens / seconds, "mfu": flops / seconds / (args.peak_tflops * 1e12),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "loss": loss.item()}


def matmul_ceiling(device, size: int = 8192, repeats: int = 20) -> float:
    """FLOP/s of bf16 products of two size × size matrices on ``device``."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return repeats * 2 * size**3 / (time.perf_counter() - t0)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--tiny", action="store_true", help="a tiny model on the CPU: checks the code, not the speed")
    ap.add_argument("--out", help="a JSON file: every figure, rewritten as each setting finishes")
    return ap.parse_args(argv)


def run(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    shape, base_layers = (SHAPE_TINY, 4) if args.tiny else (SHAPE_1B, 16)
    if args.tiny:
        args.seq_len, args.micro_batch, args.steps, args.warmup = 64, 2, 2, 1
    added = added_layers(base_layers)
    layers = base_layers + len(added)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    ceiling = matmul_ceiling(device, 256 if args.tiny else 8192, 2 if args.tiny else 20)
    print(f"device: {name}; torch {torch.__version__}; {layers} layers ({base_layers} + {len(added)}), "
          f"{args.micro_batch} x {args.seq_len} tokens per step, bf16 autocast, sdpa; bf16 matmul "
          f"{ceiling / 1e12:.1f} TFLOP/s ({100 * ceiling / (args.peak_tflops * 1e12):.1f}% of the datasheet peak)",
          flush=True)
    results = []
    report = {"device": name, "torch": torch.__version__, "layers": layers, "added": added,
              "tokens_per_step": args.micro_batch * args.seq_len, "peak_tflops": args.peak_tflops,
              "bf16_matmul_flops_per_s": ceiling, "settings": results}

    def keep(r):
        r["mfu_of_measured_matmul"] = r["mfu"] * args.peak_tflops * 1e12 / ceiling
        results.append(r)
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))

    for policy in ("new_only", "all"):
        for checkpointing in (False, True):
            model = build(shape, layers, device)
            r = measure(model, added, policy, checkpointing, args, device)
            keep(r)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
            peak = f", peak {r['peak_gib']:.1f} GiB" if r["peak_gib"] is not None else ""
            print(f"{policy:8s} checkpointing={str(checkpointing):5s}: {r['tokens_per_s']:10.0f} tokens/s, "
                  f"MFU {100 * r['mfu']:5.1f}% ({100 * r['mfu_of_measured_matmul']:5.1f}% of the measured matmul)"
                  f"{peak}, loss {r['loss']:.3f}", flush=True)
    # one FSDP step on one process: the sharded path (FSDP2 over a one-process group) runs on this device
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        r = measure(build(shape, layers, device), added, "new_only", False, args, device, fsdp=True)
        keep(r)
        print(f"FSDP2 fully_shard, 1 process, new_only: one step, {r['tokens_per_s']:.0f} tokens/s, "
              f"loss {r['loss']:.3f}", flush=True)
    finally:
        dist.destroy_process_group()
    return report


def main(argv=None) -> None:
    print(json.dumps(run(parse(argv))["settings"]))


if __name__ == "__main__":
    main()
