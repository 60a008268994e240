"""Configuration checks run before any job: the JSON schema (with defaults filled in), then what a
schema cannot say — generators that exist, placements that fit the model, a target that is a row."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path

import yaml

from deepen.core.schema import method_defaults, training_defaults
from deepen.expand import methods
from deepen.expand import plan as plans
from deepen.expand.plan import PlanError
from deepen.models.families import UnsupportedFamily, family_for
from deepen.report.rows import match_row
from deepen.train.settings import TrainingSettings
from deepen.workflow.design import (GROWTH_TRAIN_KEYS, base_hub_model, base_model_config, base_model_dir,
                                    base_model_kind, export_targets, freeze_policies, growth_operators_at, growth_train, race_candidates, rows)


class ConfigError(ValueError):
    pass


def default_filling_validator():
    """A JSON-schema validator that fills in defaults as it goes. jsonschema is imported here, not at the top:
    the library's modules that read configs run on machines without it (benchmarks/smollm2_gpu.py)."""
    from jsonschema import Draft202012Validator, validators

    base_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        # an overlay section (x-overlay) replaces another section's keys: filling defaults would hide those
        if isinstance(instance, dict) and not schema.get("x-overlay"):
            for key, sub in props.items():
                if "default" in sub and key not in instance:
                    instance[key] = json.loads(json.dumps(sub["default"]))
        yield from base_properties(validator, props, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": properties})


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _schema_problems(config: dict, schema: dict) -> list[str]:
    problems = []
    for err in sorted(default_filling_validator()(schema).iter_errors(config), key=lambda e: list(e.absolute_path)):
        where = _key(err.absolute_path)
        if err.validator == "additionalProperties":
            known = list(err.schema.get("properties", {}))
            extra = [k for k in err.instance if k not in known]
            for k in extra:
                hint = difflib.get_close_matches(k, known, n=1)
                hint = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(known)}"
                problems.append(f"{_key([*err.absolute_path, k])}: unknown key{hint}")
        else:
            problems.append(f"{where}: {err.message}")
    return problems


def row_of(config: dict, name: str) -> tuple[str, str]:
    try:
        return match_row(name, rows(config))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _base_model_problems(config: dict) -> list[str]:
    base = config.get("base_model")
    kind = base_model_kind(config)
    if kind == "hub":
        from deepen.models.hub import HubError

        try:
            base = str(base_hub_model(config).path)
        except HubError as e:
            return [f"base_model: {e}"]
    if kind in ("directory", "hub"):
        if not Path(base).is_dir():
            return [f"base_model: directory {base!r} does not exist (a Hub model is named owner/name)"]
        if not (Path(base) / "config.json").exists():
            return [f"base_model: {base!r} has no config.json; it must be an HF model directory"]
        quantized = json.loads((Path(base) / "config.json").read_text()).get("quantization_config")
        if quantized:
            method = quantized.get("quant_method", "?") if isinstance(quantized, dict) else "?"
            return [f"base_model: {base!r} is quantised ({method}): deepen copies and computes tensors in a float "
                    "dtype, and a quantised checkpoint's packed weights are not those; give the unquantised model "
                    "(or its GGUF, which deepen dequantises on import)"]
    elif kind == "gguf":
        from deepen.models.gguf_file import GGUFError

        try:
            base_model_config(config)
        except GGUFError as e:
            return [f"base_model: {e}"]
    elif "model" not in config.get("base", {}) or "train" not in config.get("base", {}):
        return ["base: base.model and base.train are required when base_model is null"]
    return []


def corpus_problems(corpus: dict, load_datasets: bool = True) -> list[str]:
    """A corpus source's settings, and (``load_datasets``) whether a Hugging Face dataset can be loaded."""
    source = corpus["source"]
    if source in ("files", "jsonl", "parquet"):
        if not corpus.get("path"):
            return [f"corpus.path: required when corpus.source is {source!r}"]
        if not Path(corpus["path"]).exists():
            return [f"corpus.path: {corpus['path']!r} does not exist"]
    if source == "hf":
        if not corpus.get("dataset"):
            return ["corpus.dataset: required when corpus.source is 'hf'"]
        if not load_datasets:
            return []
        from deepen.data.corpus import load_hf_dataset

        try:
            load_hf_dataset(corpus)
        except ValueError as e:
            return [str(e)]
    return []


def training_problems(section: str, train: dict, processes: int = 1, gpu: bool = True) -> list[str]:
    """Settings of one training section that the schema cannot check alone (deepen/train/settings.py), over
    ``processes`` processes, where the jobs have a GPU or not (``gpu``)."""
    try:
        settings = TrainingSettings.from_config(train)
    except TypeError as e:  # a required key missing: the schema says which
        return [f"{section}: {e}"]
    return settings.problems(section, processes, gpu)


def jobs_have_gpu(config: dict) -> bool:
    """Whether the training jobs will have a GPU: they request one (resources.gpus), or run here and this machine
    has one; never with resources.device: cpu."""
    from deepen.core.device import gpu_available

    resources = config["resources"]
    return resources["device"] != "cpu" and (resources["gpus"] > 0 or gpu_available())


def eval_problems(eval_cfg: dict, tasks_dir: Path, load_datasets: bool) -> list[str]:
    from deepen.evaluate.harness import embedded_task_names

    embedded = embedded_task_names(tasks_dir)
    include = eval_cfg["include_path"]
    if include and not Path(include).is_dir():
        return [f"eval.include_path: {include!r} is not a directory"]
    data = eval_cfg["benchmark_data"]
    if data and not Path(data).is_dir():
        return [f"eval.benchmark_data: {data!r} is not a directory"]
    problems = [f"eval.num_fewshot: {task!r} is not one of eval.tasks" for task in eval_cfg["num_fewshot"]
                if task not in eval_cfg["tasks"]]
    registered = [t for t in eval_cfg["tasks"] if t not in embedded]
    if isinstance(eval_cfg["limit"], dict):
        problems += [f"eval.limit: {task!r} is not one of eval.tasks' registered tasks (a limit subsets those; the "
                     f"embedded tasks' size is eval.max_docs)" for task in eval_cfg["limit"]
                     if task not in registered and not any(task.startswith(f"{t}_") for t in registered)]
    if registered and load_datasets:
        from deepen.evaluate.registered_tasks import registered_task_problems

        problems += registered_task_problems(registered, include, data)
    return problems


def _files_of_the_workflow(config: dict, tasks_dir: Path) -> None:
    """A method's file named by a relative path is read from the working directory; one that is not there but is in
    the workflow's own folder (an example config's mergekit file, run from an installed wheel or with --directory)
    is taken from there."""
    root = Path(tasks_dir).resolve().parent.parent
    for opts in config["methods"].values():
        path = opts.get("config") if isinstance(opts, dict) else None
        if isinstance(path, str) and not Path(path).is_absolute() and not Path(path).exists() and (root / path).exists():
            opts["config"] = str(root / path)


def _semantic_problems(config: dict, tasks_dir: Path, load_datasets: bool = True) -> list[str]:
    _files_of_the_workflow(config, tasks_dir)
    problems = _base_model_problems(config)
    if problems:
        return problems
    base = config.get("base_model")
    model = base_model_config(config)
    try:
        arch = family_for(model.get("model_type", ""))
    except UnsupportedFamily as e:
        return [f"base_model: {e}"]
    L = model["num_hidden_layers"]
    depths = {}  # each method's expanded depth
    for name, opts in config["methods"].items():
        try:
            option_problems = methods.option_problems(opts)
        except PlanError as e:
            problems.append(f"methods.{name}.generator: {e}")
            continue
        if option_problems:
            problems += [f"methods.{name}.{p}" for p in option_problems]
            continue
        # the method's declared defaults, filled in once the options are known to be its own
        opts.update(methods.with_defaults(opts))
        try:
            plan = methods.build_plan(opts, L)
        except PlanError as e:
            problems.append(f"methods.{name}: {e}")
            continue
        family = methods.family_problems(opts, arch, plan)
        if family:
            problems += [f"methods.{name}.{p}" for p in family]
            continue
        depths[name] = len(plan)
        if {**method_defaults(), **opts}["cpt"] and "new_only" in freeze_policies(opts) and not plans.added_layers(plan):
            problems.append(f"methods.{name}.freeze: 'new_only' but generator {opts['generator']!r} "
                            "adds no layers; use 'all'")
    target = config["report"]["target_loss"]
    if isinstance(target, (int, float)) and not math.isfinite(target):
        problems.append(f"report.target_loss: {target} is not a finite number")
    for matrix in config["report"]["continuity_matrices"]:
        if matrix not in arch.linear:
            problems.append(f"report.continuity_matrices: {matrix!r} is not a weight matrix of {model['model_type']!r} "
                            f"(known: {', '.join(arch.linear)})")
    if isinstance(target, str):
        try:
            row_of(config, target)
        except ConfigError as e:
            problems.append(f"report.target_loss: {e}")
    try:
        row_of(config, config["report"]["reference"])
    except ConfigError as e:
        problems.append(f"report.reference: {e}")
    problems += eval_problems(config["eval"], tasks_dir, load_datasets)
    max_pos = model.get("max_position_embeddings")
    for section in ("cpt",) + (() if base else ("base.train",)):
        sub = config["cpt"] if section == "cpt" else config["base"]["train"]
        if max_pos and sub["seq_len"] > max_pos:
            problems.append(f"{section}.seq_len: {sub['seq_len']} exceeds the model's max_position_embeddings {max_pos}")
    sections = {"cpt": config["cpt"], **({} if base else {"base.train": config["base"]["train"]})}
    if config["sft"]["enabled"] and "train" in config["sft"]:
        sections["sft.train"] = config["sft"]["train"]
    # a GPU is looked for (importing torch) only where a section needs one
    gpu = not any(s.get("precision") == "fp16" for s in sections.values()) or jobs_have_gpu(config)
    for section, train in sections.items():
        processes = config["cpt"]["nproc"] * config["cpt"]["nodes"] if section == "cpt" else 1
        problems += training_problems(section, train, processes, gpu)
    problems += attention_problems(config, model["model_type"])
    problems += device_problems(config["resources"]["device"], config["resources"]["gpus"])
    problems += process_problems(config["cpt"]["nproc"], config["resources"]["gpus"])
    problems += corpus_problems(config["corpus"], load_datasets)
    if config["growth"]["enabled"]:
        problems += _growth_problems(config, model)
    if config["race"]["enabled"]:
        problems += _race_problems(config)
    sft = config["sft"]
    if sft["enabled"]:
        if sft["expansion"] not in config["methods"]:
            problems.append(f"sft.expansion: {sft['expansion']!r} is not a method of this config")
        if "train" not in sft:
            problems.append("sft.train: required when sft.enabled (steps, batch_size, seq_len, lr, eval_interval)")
        if model.get("model_type") != "llama":
            problems.append(f"sft.enabled: DLO wraps Llama models; the base is {model.get('model_type')!r}")
        edge, depth = sft["dlo"]["unrouted_edge_layers"], depths.get(sft["expansion"])
        if depth is not None and 2 * edge >= depth:
            problems.append(f"sft.dlo.unrouted_edge_layers: {edge} first and {edge} last layers unrouted leave "
                            f"no routed layer of {sft['expansion']!r}'s {depth}")
    problems += export_problems(config, model)
    return problems


def export_problems(config: dict, model: dict) -> list[str]:
    """export.gguf names what the run makes, in a type the family's GGUF layout takes, with a tokenizer llama.cpp
    can be given."""
    from deepen.models.gguf_export import export_problems as gguf_problems, tokenizer_problems

    export = config["export"]
    if not export["gguf"]:
        return []
    try:
        export_targets(config)
    except ValueError as e:
        return [f"export.gguf: {e}"]
    problems = [f"export: {p}" for p in gguf_problems(model, export["type"])]
    if base_model_kind(config) in ("directory", "hub"):
        problems += [f"export.gguf: {p}" for p in tokenizer_problems(base_model_dir(config))]
    return problems


def process_problems(nproc: int, gpus: int) -> list[str]:
    """One CPT process per GPU: a job given GPUs (resources.gpus) cannot run more processes than it has GPUs.
    Without GPUs, processes share the CPU (gloo)."""
    if gpus and nproc > gpus:
        return [f"cpt.nproc: {nproc} processes, but each job has resources.gpus: {gpus} GPU(s); one process per "
                f"GPU: set nproc to at most {gpus} (or gpus to {nproc})"]
    return []


def device_problems(requested: str, gpus: int) -> list[str]:
    from deepen.core.device import device_problems as problems

    return problems(requested, gpus) if requested == "cuda" else []


def attention_problems(config: dict, model_type: str) -> list[str]:
    """An attention kernel named in a training section that the base's model class cannot take."""
    from deepen.models.families import attention_kernels, causal_lm_class

    sections = {"cpt": config["cpt"], "base.train": config.get("base", {}).get("train", {}),
                "sft.train": config["sft"].get("train", {}) if config["sft"]["enabled"] else {}}
    named = {s: t["attn_implementation"] for s, t in sections.items()
             if {**training_defaults(), **t}["attn_implementation"] != "auto"}
    if not named:
        return []
    model_class = causal_lm_class(model_type)
    kernels = attention_kernels(model_class)
    return [f"{section}.attn_implementation: {kernel!r} is not available for the base's family {model_type!r} "
            f"({model_class.__name__}; available: {', '.join(kernels)}, or auto)"
            for section, kernel in named.items() if kernel not in kernels]


def _race_problems(config: dict) -> list[str]:
    race, problems = config["race"], []
    try:
        candidates = race_candidates(config)
    except ValueError as e:
        return [f"race.candidates: {e}"]
    if len(candidates) < 2:
        problems.append(f"race.candidates: a race needs two candidates or more, this one has {candidates}")
    rungs = race["rungs"]
    if any(b <= a for a, b in zip(rungs, rungs[1:])):
        problems.append(f"race.rungs: {rungs} must increase (each is the step its rung ends at)")
    cpt = config["cpt"]
    if cpt["nproc"] * cpt["nodes"] > 1:
        problems.append("race: every rung trains in one process; set cpt.nproc and cpt.nodes to 1")
    if rungs[0] <= cpt["warmup_steps"]:
        problems.append(f"race.rungs: the first rung ends at step {rungs[0]}, within cpt.warmup_steps "
                        f"({cpt['warmup_steps']}): candidates would be compared before their rate is up")
    return problems


def _growth_problems(config: dict, model: dict) -> list[str]:
    growth, problems = config["growth"], []
    if model.get("model_type") != "llama":
        problems.append(f"growth.enabled: growth pretrains Llama models; the base is {model.get('model_type')!r}")
    L = model["num_hidden_layers"]
    for g in growth["g"]:
        if L % g:
            problems.append(f"growth.g: {g} does not divide the target's {L} layers")
    if len(set(growth["d"])) != len(growth["d"]) or len(set(growth["g"])) != len(growth["g"]):
        problems.append("growth: a value of g or d is listed twice")
    if any(d >= 1 and d != int(d) for d in growth["d"]):
        problems.append("growth.d: a value of 1 or more is a token count and must be a whole number")
    at_g, at_d = growth_operators_at(config)
    if at_g not in growth["g"] or at_d not in growth["d"]:
        problems.append(f"growth.operators_at: (g {at_g}, d {at_d}) is not one of the settings of growth.g and growth.d")
    train = growth_train(config)
    problems += [f"growth.train.{key}: growth runs take their steps from the FLOPs budget and run them all; "
                 f"remove it" for key in ("steps", "plateau") if key in config["growth"]["train"]]
    missing = [k for k in GROWTH_TRAIN_KEYS if k not in train]
    if missing:
        problems.append(f"growth.train: missing {', '.join(missing)} (base.train does not give them)")
    elif model.get("max_position_embeddings") and train["seq_len"] > model["max_position_embeddings"]:
        problems.append(f"growth.train.seq_len: {train['seq_len']} exceeds max_position_embeddings "
                        f"{model['max_position_embeddings']}")
    return problems


def validate_config(config: dict, schema_path, tasks_dir, load_datasets: bool = True) -> dict:
    """Fill defaults into ``config`` in place and raise ConfigError listing every problem. With
    ``load_datasets``, eval.tasks that are not embedded are looked up in lm-eval and their datasets loaded (tens
    of seconds), and so is a Hugging Face corpus."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = _schema_problems(config, schema)
    if not problems:
        problems = _semantic_problems(config, Path(tasks_dir), load_datasets)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return config
