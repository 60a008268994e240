"""Step-0 losses: every model's val loss on the fixed slice before any training, and an imported base's info."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.core.atomic import write_json
from deepen.core.device import evaluation_dtype, stage_device
from deepen.data.tokenizer import load_tokenizer
from deepen.data.tokens import open_tokens
from deepen.models.families import family_for


def init_loss_stage(name: str, model_dir, val_bin, cfg: dict, out_path, threads: int = 1, device: str = "auto") -> None:
    """A model's val loss on the fixed slice before any training: every expanded model's, trained or not,
    and the base's; on ``device`` (resources.device: deepen.core.device decides, and the dtype)."""
    import time

    import torch

    from deepen.models.model_dir import read_model_config
    from deepen.models.model_dir import check_model_dir
    from deepen.models.modeling import count_parameters, load_causal_lm
    from deepen.train.trainer import fixed_slice_loss

    torch.set_num_threads(max(1, threads))
    config = read_model_config(model_dir)
    check_model_dir(model_dir, family_for(config.get("model_type", "")), config)
    on = stage_device(device)
    model = load_causal_lm(model_dir, on, evaluation_dtype(on))
    tokenizer = load_tokenizer(model_dir)
    t0 = time.time()
    result = fixed_slice_loss(model, open_tokens(val_bin, tokenizer), cfg["seq_len"], cfg["eval_tokens"],
                              cfg["batch_size"])
    write_json({"model": name, "layers": model.config.num_hidden_layers, "params": count_parameters(model),
                **result, "seconds": round(time.time() - t0, 3), "device": on.type,
                "dtype": str(evaluation_dtype(on)).removeprefix("torch.")}, out_path)


def base_info_stage(base_dir, init_json, out_path) -> None:
    """info.json of an imported base: what was imported (deepen_import.json) and its perplexity on the val slice."""
    import math

    imported = json.loads((Path(base_dir) / "deepen_import.json").read_text())
    init = json.loads(Path(init_json).read_text())
    write_json({**imported, "val_loss": init["val_loss"], "val_perplexity": math.exp(init["val_loss"]),
                "val_tokens": init["val_tokens"]}, out_path)
