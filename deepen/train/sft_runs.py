"""The SFT comparison's runs: the data, and SFT of the base, the dense expansion and DLO over it."""

from __future__ import annotations

from pathlib import Path

from deepen.core.atomic import write_json
from deepen.data.tokenizer import load_tokenizer
from deepen.train.metrics import read_metrics


def sft_data_stage(train_txt, test_txt, out_dir, cfg: dict) -> None:
    from deepen.train.sft import build_sft_data

    counts = build_sft_data(train_txt, test_txt, out_dir, cfg)
    write_json(counts, Path(out_dir) / "counts.json")


def sft_stage(variant: str, model_dir, data_dir, cfg: dict, dlo_cfg: dict | None, seed: int, work_dir, final_dir,
              info_path, threads=1) -> None:
    """SFT of one variant: a dense model, or (``dlo_cfg`` given) the DLO model over the dense one. Afterwards,
    on the held-out examples: each layer's MLP execution rate and inference tokens/s, routed and with
    every MLP executed (the dense compute of the same weights)."""
    from deepen.train import dlo
    from deepen.models.modeling import count_parameters, load_causal_lm
    from deepen.train.sft import SFTSamples, read_examples
    from deepen.train.trainer import train

    tokenizer = load_tokenizer(model_dir)
    model = dlo.from_dense(model_dir, **dlo_cfg) if dlo_cfg else load_causal_lm(model_dir)
    steps, batch, seq_len = cfg["steps"], cfg["batch_size"], cfg["seq_len"]
    train_set = SFTSamples(read_examples(Path(data_dir) / "train.jsonl"), tokenizer, seq_len, steps * batch, seed)
    heldout = SFTSamples(read_examples(Path(data_dir) / "heldout.jsonl"), tokenizer, seq_len)
    result = train(model, tokenizer, train_set, heldout, {**cfg, "seed": seed, "freeze": "all", "plateau": None},
                   work_dir, final_dir, threads=threads)
    final_loss = read_metrics(Path(work_dir) / "metrics.jsonl")[-1]["val_loss"]
    model.eval()
    speed = dlo.inference_speed(model, heldout, batch, routed=bool(dlo_cfg))
    write_json({"variant": variant, "seed": seed, "params": count_parameters(model), "heldout_loss": final_loss,
                **result, **speed}, info_path)
