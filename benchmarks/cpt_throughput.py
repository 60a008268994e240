"""CPT throughput of the training stage (transformers.Trainer) against a minimal PyTorch loop.

Same model (the default config's base shape expanded to 12 layers, all parameters training), same
batch, optimizer, schedule and gradient clipping, in one run. Target: stage / plain >= 0.9.

    python benchmarks/cpt_throughput.py [--steps 60]
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, parse_options  # noqa: E402

from deepen.train.trainer import RandomWindows, train  # noqa: E402


class FakeTokenizer:
    """Just enough of a tokenizer for ``train`` to save the final model directory."""

    def save_pretrained(self, path):
        pass


def make_model(layers, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=4096, hidden_size=128, intermediate_size=384,
                                        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=256, tie_word_embeddings=False))


def plain_loop(model, data: RandomWindows, steps, batch, lr, warmup):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warmup) if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))))
    model.train()
    t = time.perf_counter()
    for step in range(steps):
        idx = range(step * batch, (step + 1) * batch)
        x = torch.stack([data[i]["input_ids"] for i in idx])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t, loss.item()


def main():
    args = parse_options(__doc__, steps=60, batch=16, seq_len=128, layers=12, threads=2)
    torch.set_num_threads(args.threads)
    tokens = np.random.default_rng(0).integers(0, 4096, size=500_000).astype(np.uint16)
    steps, batch, seq = args.steps, args.batch, args.seq_len
    cfg = dict(steps=steps, batch_size=batch, seq_len=seq, lr=1e-3, warmup_steps=5, eval_interval=steps,
               eval_tokens=batch * seq, checkpoint_interval=10 * steps, seed=0, freeze="all")

    plain_s, plain_loss = plain_loop(make_model(args.layers), RandomWindows(tokens, seq, steps * batch, 0),
                                     steps, batch, 1e-3, 5)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train(make_model(args.layers), FakeTokenizer(), tokens, tokens[:100_000], cfg, Path(tmp) / "w",
              Path(tmp) / "final", threads=args.threads)
        stage_s = time.perf_counter() - t
    n = steps * batch * seq
    print(f"machine: {machine()}")
    print(f"model: {args.layers} layers, hidden 128; {steps} steps of {batch} x {seq} tokens")
    print(f"plain PyTorch loop: {n / plain_s:8.0f} tokens/s ({plain_s:.1f} s, last loss {plain_loss:.3f})")
    print(f"training stage:     {n / stage_s:8.0f} tokens/s ({stage_s:.1f} s, incl. step-0 and final eval, save)")
    print(f"ratio stage / plain: {plain_s / stage_s:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
