"""Samples: a few fixed prompts answered greedily by every model, at step 0 and after CPT — the first thing people
look at after a merge ("does it still talk?"). Through the chat template where the model's tokenizer has one
(``report.samples.chat_template: auto``), else as plain text to continue. Greedy decoding, so a rerun writes the
same text on the same machine."""

from __future__ import annotations

import time

from deepen.core.device import evaluation_dtype, stage_device
from deepen.core.atomic import write_json


def prompt_ids(tokenizer, prompt: str, chat: bool) -> list[int]:
    if chat:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    return tokenizer(prompt)["input_ids"]


def uses_chat(tokenizer, setting) -> bool:
    """``setting``: true, false or 'auto' (on where the tokenizer has a chat template)."""
    has = bool(getattr(tokenizer, "chat_template", None))
    return has if setting == "auto" else bool(setting) and has


def answer(model, tokenizer, prompts: list[str], max_new_tokens: int, chat: bool) -> list[dict]:
    """Each prompt's greedy continuation (the new tokens only, decoded without special tokens)."""
    import torch

    out = []
    device = next(model.parameters()).device
    stop = [t for t in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")
                        if "<|im_end|>" in tokenizer.get_vocab() else None} if t is not None]
    for prompt in prompts:
        ids = prompt_ids(tokenizer, prompt, chat)
        with torch.no_grad():
            generated = model.generate(torch.tensor([ids], device=device), max_new_tokens=max_new_tokens,
                                       do_sample=False, eos_token_id=stop or None,
                                       pad_token_id=tokenizer.pad_token_id or (stop[0] if stop else 0),
                                       attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device))
        new = generated[0, len(ids):].tolist()
        out.append({"prompt": prompt, "completion": tokenizer.decode(new, skip_special_tokens=True).strip(),
                    "tokens": len(new), "chat": chat})
    return out


def samples_stage(names: list[str], model_dirs: list[str], settings: dict, out_path, threads: int = 1,
                  device: str = "auto") -> dict:
    """{model name: its answers} of every model, written to ``out_path`` (JSON)."""
    import torch

    from deepen.data.tokenizer import load_tokenizer
    from deepen.models.modeling import load_causal_lm

    torch.set_num_threads(max(1, threads))
    on = stage_device(device)
    results, t0 = {}, time.time()
    for name, model_dir in zip(names, model_dirs):
        model = load_causal_lm(model_dir, on, evaluation_dtype(on))
        model.eval()
        tokenizer = load_tokenizer(model_dir)
        results[name] = answer(model, tokenizer, list(settings["prompts"]), settings["max_new_tokens"],
                               uses_chat(tokenizer, settings["chat_template"]))
        del model
    write_json({"models": results, "seconds": round(time.time() - t0, 3), "device": on.type}, out_path)
    return results
