import json
import os
import sys

from snakemake.exceptions import WorkflowError

# The library lives beside the workflow; importable even when the package is not installed.
sys.path.insert(0, workflow.basedir)

from deepen.core.device import pin_cpu_vector_path  # noqa: E402
from deepen.workflow.config_check import ConfigError, validate_config  # noqa: E402
from deepen.expand.methods.lesa import PREDICTOR_SPACES  # noqa: E402
from deepen.core.paths import FOLDERS, OUTPUTS  # noqa: E402
from deepen.workflow.jobs import JobTable  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every job computes on the same x86 vector path, so that two machines give the same floats (deepen/core/device.py).
pin_cpu_vector_path()

try:
    # lm-eval's registered tasks and a Hugging Face corpus are loaded (tens of seconds) by the main process only,
    # not again by each job
    validate_config(config, os.path.join(workflow.basedir, "config", "schema.yaml"),
                    os.path.relpath(os.path.join(workflow.basedir, "config", "tasks")),
                    load_datasets=workflow.is_main_process)
except ConfigError as e:
    raise WorkflowError(str(e))
# A Hub model or dataset the config names is fetched by the check above, once, when the user's environment allows
# the network (HF_HUB_OFFLINE, as transformers reads it); the jobs then read the cache and fetch nothing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Every rule's result paths, parameters and resources (deepen/workflow/jobs.py): a rule states none of its own, it
# only wires the table's to Snakemake (params: **JOBS.rule_params(rule), resources: **JOBS.resources(rule)).
JOBS = JobTable(config, workflow.basedir)
FAMILY = JOBS.family
BASE_DIR = JOBS.base_dir
TOKENIZER_DIR = JOBS.tokenizer_dir
GROWTH = JOBS.growth
SFT = JOBS.sft
# What every training run reads: windows of the tokenized splits.
TOKEN_FILES = {split: JOBS.outputs("tokens", split=split)["tokens"] for split in ("train", "val")}
# Every job's environment (relative to rules/, where every rule lives).
CONDA_ENV = "../envs/deepen.yaml"


def outputs(rule: str, aligned: bool = False, **wildcards) -> dict:
    """The rule's outputs from the job table, a folder as Snakemake's directory()."""
    return {name: (directory(path) if OUTPUTS[rule][name] in FOLDERS else path)
            for name, path in JOBS.outputs(rule, aligned, **wildcards).items()}


def per_matrix(rule: str, matrices: list[str], aligned: bool = False) -> dict:
    """The outputs of a rule that writes one file per matrix type in one job (the other wildcards stay)."""
    return {name: expand(path, matrix=matrices, allow_missing=True)
            for name, path in JOBS.outputs(rule, aligned).items()}


wildcard_constraints:
    method="|".join(["base"] + JOBS.methods),
    freeze="new_only|all",
    seed=r"\d+",
    model=JOBS.model_pattern,
    matrix="|".join(FAMILY.matrices),
    operator="stack|zero_init|random",
    variant="|".join(["base", "dlo", config["sft"]["expansion"]]),
    space="svd|nosvd",
    g=r"\d+",
    d=r"[0-9.e+]+",
    rung=r"\d+",
    export="|".join(JOBS.exports) or "^$",
