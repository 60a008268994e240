"""Supervised fine-tuning data built from the plays, with the loss on response tokens only.

Two task kinds from each speech ("NAME:" followed by its lines):

* continue: "Continue this speech by NAME:\\n<first lines>\\n" → the next lines;
* speaker: "Who speaks these lines?\\n<lines>\\nAnswer:" → " NAME".

Training examples come from the training plays, the held-out ones from the test plays.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import torch
from torch.utils.data import Dataset

from deepen.core.atomic import atomic_path

SPEECH = re.compile(r"^([A-Z][A-Z'. -]+[A-Z]):\n((?:[^\n]+\n)+)", re.M)
IGNORE = -100


def speeches(text: str) -> list[tuple[str, list[str]]]:
    return [(m.group(1), m.group(2).strip("\n").split("\n")) for m in SPEECH.finditer(text)]


def build_examples(text: str, max_examples: int, context_lines: int, seed: int) -> list[dict]:
    """Alternating task kinds over the speeches long enough for them, shuffled, at most ``max_examples``."""
    rng = random.Random(seed)
    out, turn = [], 0
    for name, lines in speeches(text):
        turn += 1
        if len(lines) >= context_lines + 1 and turn % 2:
            out.append({"kind": "continue",
                        "prompt": f"Continue this speech by {name}:\n" + "\n".join(lines[:context_lines]) + "\n",
                        "response": "\n".join(lines[context_lines:context_lines + 2]) + "\n"})
        elif len(lines) >= 2:
            out.append({"kind": "speaker",
                        "prompt": "Who speaks these lines?\n" + "\n".join(lines[:context_lines]) + "\nAnswer:",
                        "response": f" {name}\n"})
    rng.shuffle(out)
    return out[:max_examples]


def build_sft_data(train_txt, test_txt, out_dir, cfg: dict) -> dict:
    """train.jsonl from the training plays, heldout.jsonl from the test plays; returns the counts."""
    counts = {}
    for split, src, n in (("train", train_txt, cfg["train_examples"]), ("heldout", test_txt, cfg["heldout_examples"])):
        examples = build_examples(Path(src).read_text(), n, cfg["context_lines"], cfg["seed"])
        if not examples:
            raise ValueError(f"SFT data: no speech in {src} gives an example")
        with atomic_path(Path(out_dir) / f"{split}.jsonl") as tmp:
            Path(tmp).write_text("".join(json.dumps(e) + "\n" for e in examples))
        counts[split] = {kind: sum(e["kind"] == kind for e in examples) for kind in ("continue", "speaker")}
    return counts


def read_examples(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def encode(example: dict, tokenizer, seq_len: int) -> dict:
    """input_ids, labels (prompt tokens ignored) and attention_mask, padded or cut to ``seq_len``."""
    prompt = tokenizer(example["prompt"], add_special_tokens=False)["input_ids"]
    response = tokenizer(example["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = ([tokenizer.bos_token_id] + prompt + response)[-seq_len:]
    labels = ([IGNORE] * (1 + len(prompt)) + response)[-seq_len:]
    pad = seq_len - len(ids)
    return {"input_ids": torch.tensor(ids + [tokenizer.pad_token_id] * pad),
            "labels": torch.tensor(labels + [IGNORE] * pad),
            "attention_mask": torch.tensor([1] * len(ids) + [0] * pad)}


class SFTSamples(Dataset):
    """``num_samples`` examples drawn with a seeded generator (training), or every example once
    (evaluation, ``num_samples`` None)."""

    def __init__(self, examples: list[dict], tokenizer, seq_len: int, num_samples: int | None = None, seed: int = 0):
        self.encoded = [encode(e, tokenizer, seq_len) for e in examples]
        if num_samples is None:
            self.order = list(range(len(self.encoded)))
        else:
            g = torch.Generator().manual_seed(seed)
            self.order = torch.randint(len(self.encoded), (num_samples,), generator=g).tolist()

    def __len__(self):
        return len(self.order)

    def __getitem__(self, i):
        return self.encoded[self.order[i]]
