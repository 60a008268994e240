import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The library lives beside the workflow; importable even when the package is not installed.
sys.path.insert(0, workflow.basedir)

from deepen.workflow.config_check import ConfigError, validate_config  # noqa: E402
from deepen.workflow.design import base_model_config, base_model_kind, growth_runs, growth_train, init_models, method_seeds, model_name, runs, trained_methods  # noqa: E402
from deepen.models.families import architecture_for  # noqa: E402
from deepen.models.gguf_import import gguf_source  # noqa: E402
from deepen.expand.methods import build_plan, required_artifacts, runs_aligned  # noqa: E402
from deepen.expand.methods.lesa import PREDICTOR_SPACES, predictor_spaces  # noqa: E402
from deepen.report import RunFacts, panel_inputs, panel_params  # noqa: E402
from deepen.workflow.resources import DTYPE_BYTES, memory_mb, parameter_count, streaming_minutes, training_minutes  # noqa: E402
from deepen.workflow import stage_costs  # noqa: E402
from deepen.evaluate.harness import embedded_task_names  # noqa: E402

# Nothing is fetched at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Found beside the workflow, not in the run's working directory (snakemake --directory RUN); relative to that
# directory, so that a run moved or copied with its workflow keeps its evaluations (Snakemake compares input paths).
TASK_TEMPLATES = os.path.relpath(os.path.join(workflow.basedir, "config", "tasks"))


def task_templates() -> list[str]:
    """The embedded tasks' templates, and the YAMLs of eval.include_path (a changed task reruns its evaluations)."""
    embedded = [os.path.join(TASK_TEMPLATES, f"{task}.yaml") for task in config["eval"]["tasks"]
                if task in embedded_task_names(TASK_TEMPLATES)]
    own_tasks = config["eval"]["include_path"]
    return embedded + (sorted(str(p) for p in Path(own_tasks).rglob("*.yaml")) if own_tasks else [])


try:
    # lm-eval's registered tasks and a Hugging Face corpus are loaded (tens of seconds) by the main process only,
    # not again by each job
    validate_config(config, os.path.join(workflow.basedir, "config", "schema.yaml"), TASK_TEMPLATES,
                    load_datasets=workflow.is_main_process)
except ConfigError as e:
    raise WorkflowError(str(e))

BASE_MODEL_CONFIG = base_model_config(config)
ARCH = architecture_for(BASE_MODEL_CONFIG["model_type"])
PRETRAIN_BASE = base_model_kind(config) == "pretrain"
# A GGUF base is imported into results/base once; every later stage sees an HF directory.
IMPORT_BASE = base_model_kind(config) == "gguf"
BASE_DIR = config["base_model"] if base_model_kind(config) == "directory" else "results/base"
TOKENIZER_DIR = "results/tokenizer" if PRETRAIN_BASE else BASE_DIR
GGUF_FILE = str(gguf_source(config["base_model"])) if IMPORT_BASE else None
# The aligned base (made by align_base) and its artifacts, which mirror the base's under results/aligned/. A method
# with `align: true` reads its weights, its artifacts and the layers it carries over there.
ALIGNED_BASE_DIR = "results/aligned/base"


def aligned_path(path: str) -> str:
    """``path`` (under results/) of the aligned base's counterpart of a base artifact."""
    return f"results/aligned/{path.removeprefix('results/')}"


def method_aligned(method: str) -> bool:
    return runs_aligned(config["methods"][method])


def on_method_base(method: str, path: str) -> str:
    """``path`` (a base artifact under results/) as ``method`` reads it: the base's, or the aligned base's."""
    return aligned_path(path) if method_aligned(method) else path


def method_base_dir(method: str) -> str:
    return ALIGNED_BASE_DIR if method_aligned(method) else BASE_DIR


METHODS = list(config["methods"])
# One CPT run per (method, freeze policy, seed); the base's own CPT is the row ("base", "all").
RUNS = runs(config)


def run_paths(pattern: str) -> list[str]:
    """``pattern`` (with {method}, {freeze}, {seed}) for every run, in RUNS order."""
    return [pattern.format(method=m, freeze=f, seed=s) for m, f, s in RUNS]


# an expanded model: results/models/{method}, or .../{method}/seed{n} for generators drawing random numbers
MODEL_PATTERN = "(?:{})(?:/seed\\d+)?".format("|".join(METHODS))


wildcard_constraints:
    method="|".join(["base"] + METHODS),
    freeze="new_only|all",
    seed=r"\d+",
    model=MODEL_PATTERN,
    matrix="|".join(ARCH.matrices),
    operator="stack|zero_init|random",
    variant="|".join(["base", "dlo", config["sft"]["expansion"]]),
    space="svd|nosvd",
    g=r"\d+",
    d=r"[0-9.e+]+",


def canonical(value):
    """Config values with dict keys sorted: reordering keys in a config file must not rerun anything
    (Snakemake compares params by their text)."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value

# Where the stages that compute with tensors run (deepen.core.device): the job's GPU, in the rules that request one.
DEVICE = config["resources"]["device"]
# What an evaluation job runs: every eval setting but those that only shape the embedded tasks' data.
EVAL_PARAMS = canonical({k: config["eval"][k] for k in ("tasks", "batch_size", "num_fewshot", "precision",
                                                        "include_path", "benchmark_data", "limit", "seed")}
                        | {"device": DEVICE})


GROWTH = config["growth"]["enabled"]
# The growth target: the base's shape, trained from scratch.
GROWTH_MODEL = canonical({k: BASE_MODEL_CONFIG[k] for k in (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "max_position_embeddings") if k in BASE_MODEL_CONFIG}) if GROWTH else {}


def computed(train: dict) -> dict:
    """A training section's settings without ``report_to``: where the losses go as a run goes changes nothing it
    computes, so changing it reruns nothing (the scripts read it from the config)."""
    return canonical({k: v for k, v in train.items() if k != "report_to"})


GROWTH_TRAIN = computed(growth_train(config)) if GROWTH else {}
GROWTH_SEEDS = list(range(config["growth"]["seeds"]))
GROWTH_RUNS = growth_runs(config) if GROWTH else []


# What every growth run reads, and writes under its folder.
GROWTH_DATA = {"tokenizer": TOKENIZER_DIR, "train": "results/tokens/train.bin", "val": "results/tokens/val.bin"}


def run_outputs(folder: str, model: str = "final") -> dict:
    """What a training run writes under its folder: its metrics, its info.json and the trained model (``model``)."""
    return {"metrics": f"{folder}/metrics.jsonl", "info": f"{folder}/info.json", model: directory(f"{folder}/{model}")}


def growth_paths(pattern: str) -> list[str]:
    """``pattern`` (with {operator}, {g}, {d}, {seed}) for every grown run, in GROWTH_RUNS order."""
    return [pattern.format(operator=o, g=g, d=d, seed=s) for o, g, d, s in GROWTH_RUNS]


SFT = config["sft"]["enabled"]
# SFT variants: the base, the dense expansion, and DLO over that expansion.
SFT_VARIANTS = ["base", config["sft"]["expansion"], "dlo"] if SFT else []
SFT_RUNS = [(variant, seed) for variant in SFT_VARIANTS for seed in range(config["sft"]["seeds"])]


def sft_paths(pattern: str) -> list[str]:
    return [pattern.format(variant=variant, seed=seed) for variant, seed in SFT_RUNS]


def sft_model(wildcards) -> str:
    """The model an SFT variant starts from: the base, or the expansion (dense, or under DLO's routers)."""
    if wildcards.variant == "base":
        return BASE_DIR
    return f"results/models/{model_of(config['sft']['expansion'], wildcards.seed)}"


RES = config["resources"]
# Every job's environment (relative to rules/, where every rule lives).
CONDA_ENV = "../envs/deepen.yaml"


def job(mem_mb: int, runtime: int, gpu: bool = False, **more) -> dict:
    """A job's resources: memory (MB), run time (minutes), a CPU per thread, and with ``gpu`` resources.gpus GPUs."""
    out = {"mem_mb": mem_mb, "runtime": runtime, "cpus_per_task": lambda wildcards, threads: threads}
    if gpu:
        out["gpu"] = RES["gpus"]
    return {**out, **more}

BASE_PARAMS = parameter_count(BASE_MODEL_CONFIG)
# Bytes of the base's weights as stored: float32 when trained here, else the checkpoint's dtype.
BASE_WEIGHT_BYTES = 4 if PRETRAIN_BASE else DTYPE_BYTES.get(
    BASE_MODEL_CONFIG.get("dtype") or BASE_MODEL_CONFIG.get("torch_dtype"), 4)
BASE_BYTES = BASE_PARAMS * BASE_WEIGHT_BYTES
# Every expanded model (one per seed for a generator that draws random numbers) and the base: each gets its
# step-0 val loss on the fixed slice, trained or not.
INIT_MODELS = init_models(config)


def deepest_expansion() -> float:
    """How many times the base's depth the deepest expanded model has (at least 2, for the runtime estimates)."""
    layers = BASE_MODEL_CONFIG["num_hidden_layers"]
    return max([2.0] + [len(build_plan(opts, layers)) / layers for opts in config["methods"].values()])


def mem_mb(factor: float, floor: int = 1024) -> int:
    """Memory for a job that holds ``factor`` × the base model's float32 bytes."""
    return memory_mb(BASE_PARAMS, 4 * factor, floor)


def streaming_runtime(passes: float) -> int:
    """Minutes for a stage that reads or writes the base's weights ``passes`` times."""
    return streaming_minutes(BASE_BYTES, passes, RES["io_bytes_per_second"], RES["runtime_safety"])


def training_runtime(train: dict, depth_factor: float = 1.0, processes: int = 1) -> int:
    """Minutes for ``train['steps']`` steps on a model ``depth_factor`` times the base's depth."""
    tokens = train["steps"] * train["batch_size"] * train["seq_len"]
    params = BASE_PARAMS * depth_factor
    return training_minutes(params, tokens, RES["train_flops_per_second"] * processes, RES["runtime_safety"])


# The cost of each tensor stage's most expensive job (deepen/workflow/stage_costs.py): its run time and memory requests.
STAGE_COSTS = stage_costs.workflow_costs(config, BASE_MODEL_CONFIG, BASE_WEIGHT_BYTES,
                                         embedded_task_names(TASK_TEMPLATES))


def stage_job(stage: str, gpu: bool = False, processes: int = 1, job_nodes: int = 1, floor: int = 1024,
              **more) -> dict:
    """``job`` with the run time the cost model gives ``stage`` at resources.train_flops_per_second per process
    (``processes`` on each of ``job_nodes``) and resources.io_bytes_per_second, and the memory of a node's processes:
    what the host holds beside a GPU where jobs get one (resources.gpus), else the stage's peak; at least ``floor``
    MB (a stage that imports the Trainer or lm-eval holds more than the bare interpreter)."""
    cost = STAGE_COSTS[stage]
    minutes = stage_costs.minutes(cost, RES["train_flops_per_second"] * processes * job_nodes,
                                  RES["io_bytes_per_second"], RES["runtime_safety"])
    return job(stage_costs.memory_mb(cost, on_gpu=RES["gpus"] > 0, processes=processes, floor=floor), minutes, gpu,
               **more)


# What the predictors train with; the held-out layers only choose which leave-one-out fits run.
PREDICTOR_TRAIN = canonical({**{k: v for k, v in config["predictor"].items() if k != "heldout_layers"},
                             "seed": config["seed"]})


def space_blocks(space: str, aligned: bool = False) -> list[str]:
    """What a predictor in ``space`` learns from: the SVD blocks ('svd'), or the raw weights ('nosvd'), of the base
    or of the aligned base."""
    pattern = "results/svd/{matrix}.safetensors" if space == "svd" else "results/weights/{matrix}.safetensors"
    return expand(aligned_path(pattern) if aligned else pattern, matrix=LESA_MATRICES)


def space_key(space: str) -> str:
    """The tensor of those files the predictor reads: V of the SVD, or the extracted weights."""
    return "V" if space == "svd" else "weights"


def model_of(method: str, seed) -> str:
    """The expanded model a run starts from: one per method, or one per seed for generators that
    draw random numbers."""
    return model_name(config, method, seed)


def generation_params(wildcards) -> dict:
    """What the layers depend on: the method's options, less the CPT-only freeze policy and seed count,
    and the seed for generators that draw random numbers."""
    method, _, seed_dir = wildcards.model.partition("/")
    seed = seed_dir.removeprefix("seed")
    opts = {k: v for k, v in config["methods"][method].items() if k not in ("freeze", "seeds", "cpt")}
    if wildcards.model != model_of(method, seed or 0):
        raise WorkflowError(f"results/models/{wildcards.model}: method {method!r} makes "
                            f"{'one model per seed' if seed == '' else 'one model, not one per seed'}")
    if seed:
        opts["seed"] = int(seed)
    return canonical(opts)


def cpt_params(wildcards) -> dict:
    cpt = {k: v for k, v in config["cpt"].items() if k != "seeds"}
    return computed({**cpt, "seed": int(wildcards.seed), "freeze": wildcards.freeze})


def multinode_resources() -> dict:
    """SLURM resources of a CPT job over cpt.nodes nodes: one task per node (srun starts a torchrun in each) with
    resources.gpus GPUs; 'mpi' tells the job step that the job starts its own srun."""
    nodes = config["cpt"]["nodes"]
    if nodes == 1:
        return {}
    extra = {"slurm_extra": f"--gpus-per-node={RES['gpus']}"} if RES["gpus"] else {}
    return {"nodes": nodes, "tasks": nodes, "mpi": "srun", "tasks_per_gpu": 0, **extra}


def cpt_model(wildcards) -> str:
    if wildcards.method == "base":
        return BASE_DIR
    return f"results/models/{model_of(wildcards.method, wildcards.seed)}"


def trained_rows(model: str) -> dict[str, str]:
    """{freeze: CPT final model} of the first seed of every CPT row that starts from ``model``."""
    return {f: f"results/cpt/{m}/{f}/seed{s}/final" for m, f, s in RUNS
            if m != "base" and s == 0 and model_of(m, 0) == model}


def init_model(wildcards) -> str:
    return BASE_DIR if wildcards.model == "base" else f"results/models/{wildcards.model}"


LESA_MATRICES = ARCH.linear


# {artifact name: file pattern} of everything the configured methods read besides the weights (deepen/methods), on
# the base and on the aligned base
METHOD_ARTIFACTS = {name: pattern for opts in config["methods"].values() if not runs_aligned(opts)
                    for name, pattern in required_artifacts(opts).items()}
ALIGNED_ARTIFACTS = {name: aligned_path(pattern) for opts in config["methods"].values() if runs_aligned(opts)
                     for name, pattern in required_artifacts(opts).items()}


def artifact_bases() -> list[tuple[bool, str, list[str]]]:
    """(aligned, base directory, predictor spaces) per base the methods' artifacts are made on: the base, for what
    any method reads (the aligned methods' rows are shown beside the base's), and the aligned base, for what the
    methods with `align: true` read, when there are any."""
    bases = [(False, BASE_DIR, sorted(predictor_spaces({**METHOD_ARTIFACTS, **ALIGNED_ARTIFACTS})))]
    if any(method_aligned(m) for m in METHODS):
        bases.append((True, ALIGNED_BASE_DIR, sorted(predictor_spaces(ALIGNED_ARTIFACTS))))
    return bases


# What decides the report's panels and the files they read (deepen/report/panels.py).
REPORT_FACTS = RunFacts(config, base_model_kind(config), ARCH.linear, METHOD_ARTIFACTS,
                        embedded_task_names(TASK_TEMPLATES), ALIGNED_ARTIFACTS, INIT_MODELS,
                        list(dict.fromkeys(model_of(m, 0) for m in METHODS)))


def report_panel_files(wildcards) -> dict:
    """The files of the run's report panels: the base's training or import, LESA's diagnostics, the branches'."""
    return panel_inputs(REPORT_FACTS)


def method_models() -> dict[str, list[str]]:
    """Every method's expanded models: one, or one per seed for a generator drawing random numbers."""
    out = {}
    for method in METHODS:
        out[method] = list(dict.fromkeys(model_of(method, s) for s in range(method_seeds(config, method))))
    return out


def base_description() -> str:
    if PRETRAIN_BASE:
        return "tiny Llama pretrained here ({} layers, hidden {})".format(
            BASE_MODEL_CONFIG["num_hidden_layers"], BASE_MODEL_CONFIG["hidden_size"])
    if IMPORT_BASE:
        return "{} imported from {} ({} layers, hidden {})".format(
            BASE_MODEL_CONFIG["model_type"], os.path.basename(GGUF_FILE), BASE_MODEL_CONFIG["num_hidden_layers"],
            BASE_MODEL_CONFIG["hidden_size"])
    return config["base_model"]


def generation_inputs(wildcards) -> dict:
    """The base the method runs on and its weights, plus the artifacts the method declares it reads: one file per
    linear matrix type each."""
    method = wildcards.model.partition("/")[0]
    needs = required_artifacts(config["methods"][method])
    files = lambda pattern, matrices: expand(on_method_base(method, pattern), matrix=matrices)  # noqa: E731
    return {"base": method_base_dir(method), "weights": files("results/weights/{matrix}.safetensors", ARCH.matrices),
            **{name: files(pattern, ARCH.linear) for name, pattern in needs.items()}}


def artifact_settings() -> dict:
    """{artifact path: the settings that made it}, for results/manifest.json."""
    from types import SimpleNamespace

    corpus = {"corpus": canonical(config["corpus"])}
    out = {f"results/data/{name}": corpus for name in ("train.txt", "val.txt", "test.txt", "manifest.json")}
    if PRETRAIN_BASE:
        out["results/tokenizer"] = {**corpus, "tokenizer": config["tokenizer"]}
        base = {**corpus, "tokenizer": config["tokenizer"], "base": canonical(config["base"]), "seed": config["seed"]}
        for path in ("results/base", "results/base_training/metrics.jsonl", "results/base_training/info.json"):
            out[path] = base
    for aligned, base_dir, spaces in artifact_bases():
        where = aligned_path if aligned else (lambda path: path)
        if aligned:
            out[ALIGNED_BASE_DIR] = {"base_model": BASE_DIR}
        for matrix in ARCH.matrices:
            out[where(f"results/weights/{matrix}.safetensors")] = {"base_model": base_dir}
        if "svd" in spaces:
            for matrix in LESA_MATRICES:
                for ext in ("safetensors", "json"):
                    out[where(f"results/svd/{matrix}.{ext}")] = {"weights": where(f"results/weights/{matrix}.safetensors")}
            for ext in ("png", "json"):
                out[f"results/report/svd_continuity{'_aligned' if aligned else ''}.{ext}"] = {
                    "matrices": config["report"]["continuity_matrices"]}
        for space in spaces:
            folder = next(f for f, sp in PREDICTOR_SPACES.items() if sp == space)
            for matrix in LESA_MATRICES:
                for ext in ("pt", "json"):
                    out[where(f"results/{folder}/{matrix}.{ext}")] = {"predictor": PREDICTOR_TRAIN, "space": space}
                out[where(f"results/predictor_heldout/{space}/{matrix}.json")] = {
                    "predictor": PREDICTOR_TRAIN, "space": space, "heldout_layers": config["predictor"]["heldout_layers"]}
    for model in sorted({model_of(m, s) for m, _, s in RUNS if m != "base"}):
        generation = {"method": generation_params(SimpleNamespace(model=model))}
        for path in (f"results/layers/{model}/new_layers.safetensors", f"results/layers/{model}/plan.json",
                     f"results/models/{model}"):
            out[path] = generation
    out["results/eval/task_data"] = {"eval": canonical(config["eval"])}
    for method, freeze, seed in RUNS:
        wc = SimpleNamespace(method=method, freeze=freeze, seed=seed)
        run = f"results/cpt/{method}/{freeze}/seed{seed}"
        for path in (f"{run}/metrics.jsonl", f"{run}/info.json", f"{run}/final"):
            out[path] = {"cpt": cpt_params(wc), "model": cpt_model(wc)}
        out[f"results/eval/{method}/{freeze}/seed{seed}.json"] = {"eval": canonical(config["eval"]), "model": f"{run}/final"}
    for name in ("summary.csv", "runs.csv", "summary.md", "loss_curves.png", "init.csv"):
        out[f"results/report/{name}"] = {"report": canonical(config["report"])}
    init_settings = {k: config["cpt"][k] for k in ("seq_len", "eval_tokens", "batch_size")}
    for model in INIT_MODELS:
        out[f"results/init/{model}.json"] = {"eval": init_settings, "model": init_model(SimpleNamespace(model=model))}
        if config["eval"]["step0"]:
            out[f"results/eval/init/{model}.json"] = {"eval": canonical(config["eval"]),
                                                      "model": init_model(SimpleNamespace(model=model))}
    if IMPORT_BASE:
        out["results/base"] = {"base_model": canonical(config["base_model"]), "source": GGUF_FILE}
        out["results/base_import/info.json"] = {"base_model": canonical(config["base_model"]), "eval": init_settings}
    if PRETRAIN_BASE:
        out["results/report/base_training.png"] = {"plateau": canonical(config["base"]["train"]["plateau"])}
    return out
