"""Pretraining the tiny base on the corpus: the model every method expands when no base_model is given."""

from __future__ import annotations

from pathlib import Path

from deepen.core.atomic import write_json
from deepen.data.tokenizer import load_tokenizer
from deepen.data.tokens import open_tokens
from deepen.train.metrics import read_metrics


def pretrain_base_stage(model_cfg, train_cfg, seed, tokenizer_dir, train_bin, val_bin, out_dir, work_dir,
                        threads=1) -> None:
    from deepen.models.modeling import count_parameters, init_tiny_llama
    from deepen.train.trainer import train

    tokenizer = load_tokenizer(tokenizer_dir)
    model = init_tiny_llama(model_cfg, tokenizer, seed)
    cfg = {**train_cfg, "seed": seed, "freeze": "all"}
    result = train(model, tokenizer, open_tokens(train_bin, tokenizer), open_tokens(val_bin, tokenizer),
                   cfg, work_dir, out_dir, threads=threads)
    final_val_loss = read_metrics(Path(work_dir) / "metrics.jsonl")[-1]["val_loss"]
    write_json({**result, "params": count_parameters(model), "final_val_loss": final_val_loss},
               Path(work_dir) / "info.json")
