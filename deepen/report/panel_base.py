"""Panel: the base model, as it was trained here (its pretraining curve, where and why it stopped) or imported from
a GGUF file (its tensors, dtype and perplexity). A base from a model directory has no panel."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.core.paths import result_path
from deepen.report.panels import panel


def base_files(facts):
    if facts.base_kind == "pretrain":
        return {"info": result_path("pretrain_base", "info"), "curve": result_path("base_training_curve", "png")}
    if facts.base_kind == "gguf":
        return {"import_info": result_path("base_info", "info")}
    return None


@panel("base_model", base_files)
def base_section(inputs, params, view) -> list[str]:
    if "info" in inputs:
        info = json.loads(Path(inputs["info"][0]).read_text())
        how = (f"stopped on a plateau at step {info['steps']} of at most {info['max_steps']}"
               if info.get("stopped_on_plateau") else f"ran its whole budget of {info['steps']} steps")
        return ["## The base model", "",
                f"Pretrained here; {how} (val loss {info.get('final_val_loss', float('nan')):.4f}).", "",
                "![base training](base_training.png)", ""]
    info = json.loads(Path(inputs["import_info"][0]).read_text())
    kinds = ", ".join(f"{n} {t}" for t, n in sorted(info["tensor_types"].items(), key=lambda kv: -kv[1]))
    return ["## The base model", "",
            f"Imported from `{Path(info['source']).name}` ({info['gguf_architecture']}, tensors {kinds}; "
            f"sha256 {info['source_sha256'][:12]}…), dequantised to {info['dtype']}: {info['layers']} layers, "
            f"{info['parameters'] / 1e6:.1f} M parameters, embeddings "
            f"{'tied to the output head' if info['tied_embeddings'] else 'untied'}. Perplexity on the fixed val "
            f"slice: {info['val_perplexity']:.2f} (loss {info['val_loss']:.4f} over {info['val_tokens']:,} "
            "tokens).", ""]
