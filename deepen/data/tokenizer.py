"""Byte-level BPE tokenizer trained on the training split, saved as an HF tokenizer directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepen.core.atomic import atomic_dir
from deepen.data.corpus import read_documents

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def train_tokenizer(train_txt: str | Path, vocab_size: int, out_dir: str | Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(read_documents(train_txt), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=1_000_000, **SPECIAL_TOKENS)
    fast.save_pretrained(str(out_dir))
    return fast


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def tokenize_documents(path: str | Path, tokenizer) -> np.ndarray:
    """All documents of a split as one token stream, EOS after each document."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for doc in read_documents(path):
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
        ids.append(eos)
    dtype = np.uint16 if len(tokenizer) < 2**16 else np.int32
    return np.asarray(ids, dtype=dtype)


def tokenizer_stage(train_txt, vocab_size: int, out_dir) -> None:
    with atomic_dir(out_dir) as tmp:
        train_tokenizer(train_txt, vocab_size, tmp)
