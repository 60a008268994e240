import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The library lives beside the workflow; importable even when the package is not installed.
sys.path.insert(0, workflow.basedir)

from deepen.config import ConfigError, base_model_config, validate_config  # noqa: E402
from deepen.arch import architecture_for  # noqa: E402

# Nothing is fetched at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TASK_TEMPLATES = os.path.join(workflow.basedir, "config", "tasks")

try:
    validate_config(config, os.path.join(workflow.basedir, "config", "schema.yaml"), TASK_TEMPLATES)
except ConfigError as e:
    raise WorkflowError(str(e))

BASE_MODEL_CONFIG = base_model_config(config)
ARCH = architecture_for(BASE_MODEL_CONFIG["model_type"])
PRETRAIN_BASE = not config["base_model"]
BASE_DIR = "results/base" if PRETRAIN_BASE else config["base_model"]
TOKENIZER_DIR = "results/tokenizer" if PRETRAIN_BASE else config["base_model"]
METHODS = list(config["methods"])
ROWS = ["base"] + METHODS


wildcard_constraints:
    method="|".join(METHODS),
    row="|".join(ROWS),
    matrix="|".join(ARCH.matrices),


def canonical(value):
    """Config values with dict keys sorted: reordering keys in a config file must not rerun anything
    (Snakemake compares params by their text)."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def base_params() -> int:
    """Approximate parameter count of the base model, for resource requests."""
    c = BASE_MODEL_CONFIG
    h, i, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    return L * (4 * h * h + 3 * h * i) + 2 * c.get("vocab_size", 32000) * h


def mem_mb(factor: float, floor: int = 1024) -> int:
    """Memory for a job that holds ``factor`` × the base model's float32 bytes."""
    return max(floor, int(factor * base_params() * 4 / 2**20) + 512)


def generation_params(wildcards) -> dict:
    """What the layers depend on: the method's options, less the CPT-only freeze policy."""
    opts = {k: v for k, v in config["methods"][wildcards.method].items() if k != "freeze"}
    return canonical({**opts, "seed": config["seed"]})


def cpt_params(wildcards) -> dict:
    freeze = "all" if wildcards.row == "base" else config["methods"][wildcards.row]["freeze"]
    return canonical({**config["cpt"], "seed": config["seed"], "freeze": freeze})


def cpt_model(wildcards) -> str:
    return BASE_DIR if wildcards.row == "base" else f"results/models/{wildcards.row}"


LESA_MATRICES = [m for m in ARCH.matrices if m not in ARCH.norms]


def lesa_spaces() -> list[str]:
    """Which predictor spaces the configured LESA methods use: 'svd' and/or 'nosvd'."""
    lesa = [m for m in config["methods"].values() if m["generator"] == "lesa"]
    return sorted({"svd" if m.get("svd", True) else "nosvd" for m in lesa})


def report_extras(wildcards) -> dict:
    """LESA's continuity numbers and predictor curves, when a LESA method runs."""
    extras = {}
    if "svd" in lesa_spaces():
        extras["continuity"] = "results/report/svd_continuity.json"
    for space in lesa_spaces():
        folder = "predictor" if space == "svd" else "predictor_nosvd"
        extras[f"curves_{space}"] = expand(f"results/{folder}/{{matrix}}.json", matrix=LESA_MATRICES)
    return extras


def generation_inputs(wildcards) -> dict:
    """The weights, plus the artifacts the method's generator reads (LESA: SVD and predictors)."""
    from deepen.generators import required_artifacts

    needs = required_artifacts(config["methods"][wildcards.method])
    inputs = {"weights": expand("results/weights/{matrix}.safetensors", matrix=ARCH.matrices)}
    if "svd" in needs:
        inputs["svd"] = expand("results/svd/{matrix}.safetensors", matrix=LESA_MATRICES)
    if "predictor" in needs:
        inputs["predictor"] = expand("results/predictor/{matrix}.pt", matrix=LESA_MATRICES)
    if "predictor_nosvd" in needs:
        inputs["predictor"] = expand("results/predictor_nosvd/{matrix}.pt", matrix=LESA_MATRICES)
    return inputs
