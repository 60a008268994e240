"""The job table: every rule's result paths, parameters and resources, derived once from the checked config. The
rules (rules/*.smk) read their outputs, params and resources here; the manifest lists every job this table
enumerates, so it lists every artifact; the GPU runner (benchmarks/smollm2_gpu.py) reads the same derivations.
The paths themselves are deepen/core/paths.py's. Nothing here imports Snakemake: a path that is a folder is named in
``FOLDERS`` there and the rules wrap it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from deepen.core.paths import OUTPUTS, PER_MATRIX, fill, result_path
from deepen.evaluate.harness import embedded_task_names
from deepen.expand import methods as registry
from deepen.expand import plan as plans
from deepen.expand.methods.lesa import PREDICTOR_SPACES, predictor_spaces
from deepen.models.families import family_for
from deepen.models.gguf_import import gguf_source
from deepen.report import RunFacts, panel_inputs, panel_outputs
from deepen.train import race
from deepen.workflow import stage_costs
from deepen.workflow.design import (base_model_config, base_model_dir, base_model_kind, base_source, growth_runs,
                                    export_targets, growth_train, init_models, method_seeds, model_name, race_candidates, runs,
                                    trained_methods)
from deepen.workflow.resources import DTYPE_BYTES, memory_mb, parameter_count, streaming_minutes, training_minutes

def canonical(value):
    """Config values with dict keys sorted: reordering keys in a config file must not rerun anything (Snakemake
    compares params by their text)."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def without_report_to(train: dict) -> dict:
    """A training section's settings without ``report_to``: where the losses go as a run goes changes nothing it
    computes, so changing it reruns nothing (the scripts read it from the config)."""
    return canonical({k: v for k, v in train.items() if k != "report_to"})


def predictor_settings(config: dict) -> dict:
    """What the predictors train with; the held-out layers only choose which leave-one-out fits run."""
    settings = {k: v for k, v in config["predictor"].items() if k != "heldout_layers"}
    return canonical({**settings, "seed": config["seed"]})


def generation_options(config: dict, model: str) -> dict:
    """What an expanded model's layers depend on: its method's options, less the CPT-only freeze policy and seed
    count, and the seed for generators that draw random numbers (``model``: {method} or {method}/seed{n})."""
    method, _, seed_dir = model.partition("/")
    seed = seed_dir.removeprefix("seed")
    if model != model_name(config, method, seed or 0):
        raise ValueError(f"{result_path('reconstruct', 'model', model=model)}: method {method!r} makes "
                         f"{'one model per seed' if seed == '' else 'one model, not one per seed'}")
    opts = {k: v for k, v in config["methods"][method].items() if k not in ("freeze", "seeds", "cpt")}
    if seed:
        opts["seed"] = int(seed)
    return canonical(opts)


def cpt_settings(config: dict, freeze: str, seed) -> dict:
    """A CPT run's training settings: cpt's, with the run's seed and freeze policy."""
    cpt = {k: v for k, v in config["cpt"].items() if k != "seeds"}
    return without_report_to({**cpt, "seed": int(seed), "freeze": freeze})


@dataclass(frozen=True)
class Job:
    """One concrete job: its rule, the files and folders it writes, its params (what the rule passes its script), and
    the inputs that are settings (the model it starts from, the corpus, the base)."""

    rule: str
    outputs: tuple[str, ...]
    params: dict
    context: dict
    # made on the aligned base, by the rule's `use rule … as <rule>_aligned` copy (rules/align.smk)
    aligned: bool = False

    @property
    def settings(self) -> dict:
        """What made its outputs: the params, and the inputs that are settings."""
        return {**self.params, **self.context}


class JobTable:
    """The jobs of one checked config. ``workflow_dir``: where the workflow lives (its embedded task templates are
    found there, as a path relative to the run's working directory)."""

    def __init__(self, config: dict, workflow_dir: str):
        self.config = config
        self.templates_dir = os.path.relpath(os.path.join(workflow_dir, "config", "tasks"))
        self.embedded_tasks = embedded_task_names(self.templates_dir)
        self.base_kind = base_model_kind(config)
        self.base_config = base_model_config(config)
        self.family = family_for(self.base_config["model_type"])
        self.pretrain_base = self.base_kind == "pretrain"
        # a GGUF base is imported into results/base once; every later stage sees an HF directory
        self.import_base = self.base_kind == "gguf"
        self.base_dir = (base_model_dir(config) if self.base_kind in ("directory", "hub")
                         else OUTPUTS["import_base"]["model"])
        # the Hub repository, the revision asked for and the exact commit read, for the manifest and the cards
        self.base_source = base_source(config)
        self.tokenizer_dir = OUTPUTS["tokenizer"]["tokenizer"] if self.pretrain_base else self.base_dir
        self.gguf_file = str(gguf_source(config["base_model"])) if self.import_base else None
        self.aligned_base_dir = OUTPUTS["align_base"]["model"]
        self.methods = list(config["methods"])
        # one CPT run per (method, freeze policy, seed); the base's own CPT is the row ("base", "all")
        self.runs = runs(config)
        # 'base' and every expanded model: each gets its step-0 val loss on the fixed slice, trained or not
        self.init_models = init_models(config)
        self.device = config["resources"]["device"]
        self.growth = config["growth"]["enabled"]
        self.growth_runs = growth_runs(config) if self.growth else []
        self.sft = config["sft"]["enabled"]
        self.sft_variants = ["base", config["sft"]["expansion"], "dlo"] if self.sft else []
        self.sft_runs = [(v, seed) for v in self.sft_variants for seed in range(config["sft"]["seeds"])]
        self.race = config["race"]["enabled"]
        # the rows that race, as method/freeze
        self.race_candidates = race_candidates(config) if self.race else []
        res = config["resources"]
        self.res = res
        self.base_params = parameter_count(self.base_config)
        # bytes of the base's weights as stored: float32 when trained here, else the checkpoint's dtype
        self.base_weight_bytes = 4 if self.pretrain_base else DTYPE_BYTES.get(
            self.base_config.get("dtype") or self.base_config.get("torch_dtype"), 4)
        # the cost of each tensor stage's most expensive job (deepen/workflow/stage_costs.py)
        self.stage_costs = stage_costs.workflow_costs(config, self.base_config, self.base_weight_bytes,
                                                      self.embedded_tasks)

    # ---- names and paths

    def model_of(self, method: str, seed) -> str:
        """The expanded model a run starts from: one per method, or one per seed for generators drawing random
        numbers."""
        return model_name(self.config, method, seed)

    def method_aligned(self, method: str) -> bool:
        return registry.runs_aligned(self.config["methods"][method])

    def method_base_dir(self, method: str) -> str:
        return self.aligned_base_dir if self.method_aligned(method) else self.base_dir

    def outputs(self, rule: str, aligned: bool = False, **wildcards) -> dict[str, str]:
        return {name: result_path(rule, name, aligned, **wildcards) for name in OUTPUTS[rule]}

    def run_paths(self, pattern: str) -> list[str]:
        """``pattern`` (with {method}, {freeze}, {seed}) for every CPT run, in run order."""
        return [pattern.format(method=m, freeze=f, seed=s) for m, f, s in self.runs]

    def growth_paths(self, pattern: str) -> list[str]:
        return [pattern.format(operator=o, g=g, d=d, seed=s) for o, g, d, s in self.growth_runs]

    def sft_paths(self, pattern: str) -> list[str]:
        return [pattern.format(variant=v, seed=s) for v, s in self.sft_runs]

    @cached_property
    def model_pattern(self) -> str:
        """An expanded model: {method}, or {method}/seed{n} for generators drawing random numbers."""
        return "(?:{})(?:/seed\\d+)?".format("|".join(self.methods))

    def method_models(self) -> dict[str, list[str]]:
        """Every method's expanded models: one, or one per seed for a generator drawing random numbers."""
        return {m: list(dict.fromkeys(self.model_of(m, s) for s in range(method_seeds(self.config, m))))
                for m in self.methods}

    @cached_property
    def first_seed_models(self) -> list[str]:
        """Each method's model of its first seed, whose seams are measured."""
        return list(dict.fromkeys(self.model_of(m, 0) for m in self.methods))

    def cpt_model(self, method: str, seed) -> str:
        return self.base_dir if method == "base" else fill(OUTPUTS["reconstruct"]["model"],
                                                           model=self.model_of(method, seed))

    def init_model(self, model: str) -> str:
        return self.base_dir if model == "base" else fill(OUTPUTS["reconstruct"]["model"], model=model)

    def sft_model(self, variant: str, seed) -> str:
        """The model an SFT variant starts from: the base, or the expansion (dense, or under DLO's routers)."""
        return self.base_dir if variant == "base" else self.cpt_model(self.config["sft"]["expansion"], seed)

    def trained_rows(self, model: str) -> dict[str, str]:
        """{freeze: CPT final model} of the first seed of every CPT row that starts from ``model``."""
        final = OUTPUTS["continual_pretrain"]["final"]
        return {f: fill(final, method=m, freeze=f, seed=s) for m, f, s in self.runs
                if m != "base" and s == 0 and self.model_of(m, 0) == model}

    # ---- samples (deepen/evaluate/samples.py)

    @cached_property
    def sample_stages(self) -> list[str]:
        """'init' (every model at step 0) and 'cpt' (each row's seed-0 model after CPT), when there are prompts."""
        return ["init", "cpt"] if self.config["report"]["samples"]["prompts"] else []

    def sample_models(self, stage: str) -> dict[str, str]:
        """{name: model folder} a samples job answers with: every model at step 0, or each row after CPT."""
        # in name order: the order of a config's keys must not change the job
        if stage == "init":
            return {model: self.init_model(model) for model in sorted(self.init_models)}
        final = OUTPUTS["continual_pretrain"]["final"]
        return {f"{m}/{f}": fill(final, method=m, freeze=f, seed=0) for m, f, s in sorted(self.runs) if s == 0}

    # ---- model cards and exports (deepen/models/card.py, deepen/models/export_stage.py)

    @cached_property
    def base_license(self) -> str | None:
        from deepen.models.card import base_license

        return base_license(self.base_dir if not (self.pretrain_base or self.import_base) else None, self.gguf_file)

    @cached_property
    def corpus_datasets(self) -> list[str]:
        """The Hub datasets the models were trained on, for the cards: the corpus, when it is one."""
        corpus = self.config["corpus"]
        return [corpus["dataset"]] if corpus["source"] == "hf" and not os.path.isdir(corpus["dataset"]) else []

    def card_facts(self, model: str) -> dict:
        """What an expanded model's card says beyond its plan: the base's source and license, the datasets and the
        method's options."""
        return {"base": self.base_source, "license": self.base_license, "datasets": self.corpus_datasets,
                "options": self.generation_params(model) if model != "base" else {}}

    @cached_property
    def exports(self) -> dict[str, dict]:
        """{export name: facts of the model it writes}: export.gguf's entries (deepen/workflow/design.py)."""
        out = {}
        for name, target in export_targets(self.config).items():
            method = target["method"]
            out[name] = {**target, **self.card_facts(target["model"]), "name": name,
                         "base_layers": self.base_config["num_hidden_layers"],
                         "generator": self.config["methods"][method]["generator"] if method != "base" else None}
        return out

    def export_inputs(self, name: str) -> dict[str, str]:
        """What an export reads: the model folder, the expanded model's (its plan), and the report's tables."""
        target = self.exports[name]
        model = (fill(OUTPUTS["continual_pretrain"]["final"], method=target["method"], freeze=target["freeze"], seed=0)
                 if target["row"] else self.init_model(target["model"]))
        report = OUTPUTS["report"]
        inputs = {"model": model, "expanded": self.init_model(target["model"]), "summary": report["csv"],
                  "init": report["init_csv"]}
        benchmarks = self.report_panel_outputs().get("benchmarks__benchmarks_csv")
        if benchmarks:
            inputs["benchmarks"] = benchmarks
        if self.sample_stages:
            inputs["samples"] = result_path("samples", "samples", stage="cpt" if target["row"] else "init")
        return inputs

    # ---- the race (deepen/train/race.py)

    def race_rung_inputs(self, method: str, freeze: str, rung) -> dict[str, str]:
        """What a candidate's rung starts from: its expanded model (the race's seed), and after the first rung the
        previous rung's checkpoint."""
        model = {"model": self.cpt_model(method, self.config["race"]["seed"])}
        if int(rung) == 1:
            return model
        return {**model, "previous": fill(OUTPUTS["race_rung"]["state"], method=method, freeze=freeze,
                                          rung=int(rung) - 1)}

    def race_rung_train(self, freeze: str, rung) -> dict:
        settings = race.rung_settings(self.config["cpt"], self.config["race"], int(rung), self.config["race"]["seed"])
        return without_report_to({**settings, "freeze": freeze})

    def race_path(self, output: str, candidate: str, rung: int) -> str:
        method, freeze = candidate.split("/")
        return fill(OUTPUTS["race_rung"][output], method=method, freeze=freeze, rung=rung)

    @cached_property
    def race_params(self) -> dict:
        """What the decisions, the cooldown and the bracket read: the race's settings, CPT's, the candidates."""
        return {"race": canonical(self.config["race"]), "cpt": without_report_to({k: v for k, v in self.config["cpt"].items()
                                                                         if k != "seeds"}),
                "candidates": self.race_candidates}

    # ---- what the methods read

    @cached_property
    def method_artifacts(self) -> dict[str, str]:
        """{artifact name: file pattern} the methods on the base read besides the weights."""
        return {name: p for opts in self.config["methods"].values()
                if not registry.runs_aligned(opts) for name, p in registry.artifact_patterns(opts).items()}

    @cached_property
    def aligned_artifacts(self) -> dict[str, str]:
        """The same for the methods on the aligned base (``align: true``): patterns under results/aligned/."""
        return {name: p for opts in self.config["methods"].values()
                if registry.runs_aligned(opts) for name, p in registry.artifact_patterns(opts).items()}

    @cached_property
    def artifact_bases(self) -> list[tuple[bool, list[str]]]:
        """(aligned, predictor spaces) per base the methods' artifacts are made on: the base, for what any method
        reads (the aligned methods' rows are shown beside the base's), and the aligned base, for what the methods
        with `align: true` read, when there are any."""
        bases = [(False, sorted(predictor_spaces({**self.method_artifacts, **self.aligned_artifacts})))]
        if any(self.method_aligned(m) for m in self.methods):
            bases.append((True, sorted(predictor_spaces(self.aligned_artifacts))))
        return bases

    def generation_inputs(self, model: str) -> dict:
        """The base the method runs on and its weights, plus the artifacts the method declares it reads (one file per
        linear matrix type each), all on the aligned base for a method with ``align: true``."""
        method = model.partition("/")[0]
        opts = self.config["methods"][method]
        weights = result_path("extract_weights", "weights", self.method_aligned(method))
        files = lambda pattern, matrices: [fill(pattern, matrix=m) for m in matrices]  # noqa: E731
        profile = {"profile": OUTPUTS["layer_profile"]["profile"]} if method in self.auto_placed else {}
        reads = registry.user_files(opts)
        return {"base": self.method_base_dir(method), "weights": files(weights, self.family.matrices),
                **{name: files(p, self.family.linear) for name, p in registry.artifact_patterns(opts).items()},
                **profile, **({"reads": reads} if reads else {})}

    @cached_property
    def auto_placed(self) -> list[str]:
        """The methods whose placement is ``auto``: they read the base's layer profile."""
        return [m for m, opts in self.config["methods"].items() if plans.is_auto(opts.get("placement"))]

    def space_blocks(self, space: str, aligned: bool = False) -> list[str]:
        """What a predictor in ``space`` learns from: the SVD blocks ('svd'), or the raw weights ('nosvd')."""
        rule, output = ("svd", "svd") if space == "svd" else ("extract_weights", "weights")
        return [result_path(rule, output, aligned, matrix=m) for m in self.family.linear]

    @staticmethod
    def space_key(space: str) -> str:
        """The tensor of those files the predictor reads: V of the SVD, or the extracted weights."""
        return "V" if space == "svd" else "weights"

    @cached_property
    def report_facts(self) -> RunFacts:
        """What decides the report's panels and the files they read (deepen/report/panels.py)."""
        return RunFacts(self.config, self.base_kind, self.family.linear, self.method_artifacts,
                        self.embedded_tasks, self.aligned_artifacts, self.init_models, self.first_seed_models,
                        self.sample_stages)

    def report_panel_files(self) -> dict:
        return panel_inputs(self.report_facts)

    def report_panel_outputs(self) -> dict[str, str]:
        """What the run's report panels write beside summary.md."""
        return panel_outputs(self.report_facts)

    def task_templates(self) -> list[str]:
        """The embedded tasks' templates, and the YAMLs of eval.include_path (a changed task reruns its
        evaluations)."""
        from pathlib import Path

        embedded = [os.path.join(self.templates_dir, f"{t}.yaml") for t in self.config["eval"]["tasks"]
                    if t in self.embedded_tasks]
        own = self.config["eval"]["include_path"]
        return embedded + (sorted(str(p) for p in Path(own).rglob("*.yaml")) if own else [])

    def base_description(self) -> str:
        c = self.base_config
        if self.pretrain_base:
            return "tiny Llama pretrained here ({} layers, hidden {})".format(c["num_hidden_layers"], c["hidden_size"])
        if self.import_base:
            return "{} imported from {} ({} layers, hidden {})".format(
                c["model_type"], os.path.basename(self.gguf_file), c["num_hidden_layers"], c["hidden_size"])
        return self.config["base_model"]

    # ---- parameters: what each job computes with (the rules' params; the manifest's settings)

    @cached_property
    def eval_params(self) -> dict:
        """What an evaluation job runs: every eval setting but those that only shape the embedded tasks' data."""
        keys = ("tasks", "batch_size", "num_fewshot", "precision", "include_path", "benchmark_data", "limit", "seed")
        return canonical({k: self.config["eval"][k] for k in keys} | {"device": self.device})

    @cached_property
    def fixed_slice(self) -> dict:
        """The fixed val slice every step-0 and CPT evaluation reads, a micro batch per forward pass."""
        cpt = self.config["cpt"]
        return canonical({"seq_len": cpt["seq_len"], "eval_tokens": cpt["eval_tokens"],
                          "batch_size": stage_costs.fixed_slice_batch(cpt)})

    @cached_property
    def seam_slice(self) -> dict:
        return {**self.fixed_slice,
                "eval_tokens": self.config["report"]["seam_tokens"] or self.config["cpt"]["eval_tokens"]}

    @cached_property
    def predictor_train(self) -> dict:
        return predictor_settings(self.config)

    def generation_params(self, model: str) -> dict:
        return generation_options(self.config, model)

    def cpt_train(self, freeze: str, seed) -> dict:
        return cpt_settings(self.config, freeze, seed)

    @cached_property
    def growth_model(self) -> dict:
        """The growth target: the base's shape, trained from scratch."""
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "max_position_embeddings")
        return canonical({k: self.base_config[k] for k in keys if k in self.base_config})

    @cached_property
    def growth_train(self) -> dict:
        return without_report_to(growth_train(self.config))

    def report_params(self) -> dict:
        from deepen.report import panel_params

        return {"runs": self.runs, "target": self.config["report"]["target_loss"],
                "reference": self.config["report"]["reference"], "base_desc": self.base_description(),
                "cpt": without_report_to(self.config["cpt"]), "init_models": self.init_models,
                "method_models": self.method_models(), "trained": trained_methods(self.config),
                "claims": canonical(self.config["report"]["claims"]), "panels": panel_params(self.report_facts)}

    # ---- resources: what a job asks a cluster for

    def request(self, mem_mb: int, runtime: int, gpu: bool = False, **more) -> dict:
        """What a job asks for: memory (MB), run time (minutes), a CPU per thread, and with ``gpu`` resources.gpus
        GPUs."""
        out = {"mem_mb": mem_mb, "runtime": runtime, "cpus_per_task": lambda wildcards, threads: threads}
        if gpu:
            out["gpu"] = self.res["gpus"]
        return {**out, **more}

    def deepest_expansion(self) -> float:
        """How many times the base's depth the deepest expanded model has (at least 2, for the estimates)."""
        layers = self.base_config["num_hidden_layers"]
        return max([2.0] + [len(registry.build_plan(o, layers)) / layers for o in self.config["methods"].values()])

    def mem_mb(self, factor: float, floor: int = 1024) -> int:
        """Memory for a job that holds ``factor`` × the base model's float32 bytes."""
        return memory_mb(self.base_params, 4 * factor, floor)

    def streaming_runtime(self, passes: float) -> int:
        """Minutes for a stage that reads or writes the base's weights ``passes`` times."""
        return streaming_minutes(self.base_params * self.base_weight_bytes, passes, self.res["io_bytes_per_second"],
                                 self.res["runtime_safety"])

    def training_runtime(self, train: dict, depth_factor: float = 1.0) -> int:
        """Minutes for ``train['steps']`` steps on a model ``depth_factor`` times the base's depth."""
        tokens = train["steps"] * train["batch_size"] * train["seq_len"]
        return training_minutes(self.base_params * depth_factor, tokens, self.res["train_flops_per_second"],
                                self.res["runtime_safety"])

    def stage_job(self, stage: str, gpu: bool = False, processes: int = 1, job_nodes: int = 1, floor: int = 1024,
                  **more) -> dict:
        """``request`` with the run time the cost model gives ``stage`` at resources.train_flops_per_second per process
        (``processes`` on each of ``job_nodes``) and resources.io_bytes_per_second, and the memory of a node's
        processes: what the host holds beside a GPU where jobs get one (resources.gpus), else the stage's peak; at
        least ``floor`` MB (a stage that imports the Trainer or lm-eval holds more than the bare interpreter)."""
        cost = self.stage_costs[stage]
        minutes = stage_costs.minutes(cost, self.res["train_flops_per_second"] * processes * job_nodes,
                                      self.res["io_bytes_per_second"], self.res["runtime_safety"])
        mem = stage_costs.memory_mb(cost, on_gpu=self.res["gpus"] > 0, processes=processes, floor=floor)
        return self.request(mem, minutes, gpu, **more)

    def multinode_resources(self) -> dict:
        """SLURM resources of a CPT job over cpt.nodes nodes: one task per node (srun starts a torchrun in each)
        with resources.gpus GPUs; 'mpi' tells the job step that the job starts its own srun."""
        nodes = self.config["cpt"]["nodes"]
        if nodes == 1:
            return {}
        extra = {"slurm_extra": f"--gpus-per-node={self.res['gpus']}"} if self.res["gpus"] else {}
        return {"nodes": nodes, "tasks": nodes, "mpi": "srun", "tasks_per_gpu": 0, **extra}

    def cpt_resources(self) -> dict:
        cpt = self.config["cpt"]
        # several nodes: GPUs per node, through multinode_resources
        return self.stage_job("continual_pretrain", gpu=cpt["nodes"] == 1, processes=cpt["nproc"],
                              job_nodes=cpt["nodes"], floor=4096 * cpt["nproc"], **self.multinode_resources())

    # ---- every rule's resources

    @cached_property
    def _resource_specs(self) -> dict[str, dict]:
        cfg, job, stage = self.config, self.request, self.stage_job
        # a job that reads and writes a few small files (a table, a plot, a decision)
        small = job(1024, 10)
        # the tensor stages: the cost model's time and memory (deepen/workflow/stage_costs.py)
        specs = {rule: stage(rule, gpu=rule in ("align_base", "svd", "predictor", "predictor_heldout",
                                                "generate_layers"))
                 for rule in ("extract_weights", "align_base", "svd", "predictor", "predictor_heldout",
                              "generate_layers", "reconstruct")}
        # the stages that run the model: an interpreter with the Trainer or lm-eval loaded holds ~2 GB beside it
        specs |= {rule: stage(rule, gpu=True, floor=2048) for rule in ("evaluate", "init_loss", "seams",
                                                                       "layer_profile")}
        # one model at a time, a few dozen tokens per prompt: an init_loss job's memory, its time per model
        specs["samples"] = self.request(specs["init_loss"]["mem_mb"],
                                        specs["init_loss"]["runtime"] * max(len(self.init_models), len(self.runs)),
                                        gpu=True)
        specs |= {
            # reading the corpus's source and splitting it; training a tokenizer; tokenizing one split
            "corpus": job(2048, 20), "tokenizer": job(4096, 30), "tokens": job(2048, 60),
            "base_info": small, "task_data": small, "base_training_curve": small,
            "evaluate_init": specs["evaluate"], "evaluate_sft": specs["evaluate"],
            "continual_pretrain": self.cpt_resources(), "race_rung": self.cpt_resources(),
            "race_cooldown": self.cpt_resources(), "race_decide": small, "race_bracket": small,
            "svd_continuity": job(self.mem_mb(0.5), self.streaming_runtime(1)),
            "report": job(2048, 10), "growth_report": job(2048, 10), "sft_data": job(2048, 10),
            "sft_report": job(2048, 10),
            # one tensor at a time in, converted, out; the folder's files are hard links
            "export_gguf": job(self.mem_mb(0.5), self.streaming_runtime(3 * self.deepest_expansion())),
            "export_model": small,
            # hashes every artifact: the base's weights once or twice, each CPT run's model once
            "manifest": job(1024, self.streaming_runtime(2 + len(self.runs) * self.deepest_expansion())),
        }
        if self.pretrain_base:
            specs["pretrain_base"] = job(self.mem_mb(16, 4096), self.training_runtime(cfg["base"]["train"]), gpu=True)
        if self.import_base:
            specs["import_base"] = job(self.mem_mb(0.2), self.streaming_runtime(3))
        if self.growth:
            growth = job(self.mem_mb(16, 4096), self.training_runtime({**self.growth_train,
                                                                       "steps": cfg["growth"]["steps"]}), gpu=True)
            specs |= {"growth_scratch": growth, "growth_small": growth, "growth_grown": growth}
        if self.sft:
            deepest = self.deepest_expansion()
            specs["sft"] = job(self.mem_mb(12 * deepest, 4096), self.training_runtime(cfg["sft"]["train"], deepest),
                               gpu=True)
        return specs

    def resources(self, rule: str) -> dict[str, Any]:
        """What a job of ``rule`` asks a cluster for: memory (MB), run time (minutes), CPUs, and GPUs where its code
        uses one."""
        return dict(self._resource_specs[rule])

    # ---- every rule's params: values, or functions of the job's wildcards

    @cached_property
    def _param_specs(self) -> dict[str, dict[str, Any]]:
        cfg, device = self.config, {"device": self.device}
        growth = {"model": self.growth_model, "train": self.growth_train, "steps": cfg["growth"]["steps"]}
        specs = {
            "corpus": {"corpus": canonical(cfg["corpus"])},
            "tokenizer": {"vocab_size": cfg["tokenizer"]["vocab_size"]},
            # corpus.max_tokens samples the training split only
            "tokens": {"max_tokens": lambda wc: cfg["corpus"]["max_tokens"] if wc.split == "train" else None,
                       "seed": cfg["corpus"]["seed"]},
            "align_base": device,
            "extract_weights": {"matrices": self.family.matrices},
            "svd": {"matrix": lambda wc: wc.matrix, **device},
            "predictor": {"key": lambda wc: self.space_key(PREDICTOR_SPACES[wc.predictor]),
                          "train": self.predictor_train, **device},
            "predictor_heldout": {"key": lambda wc: self.space_key(wc.space), "train": self.predictor_train,
                                  "layers": cfg["predictor"]["heldout_layers"], **device},
            "svd_continuity": {"matrices": cfg["report"]["continuity_matrices"]},
            "generate_layers": {"options": lambda wc: self.generation_params(wc.model), **device},
            "reconstruct": {"max_shard_mb": cfg["reconstruct"]["max_shard_mb"],
                            "card": lambda wc: self.card_facts(wc.model)},
            "export_gguf": {"type": cfg["export"]["type"], "name": lambda wc: wc.export, "license": self.base_license,
                            # the GGUF the base came from: its tokenizer goes into the export as llama.cpp read it
                            "tokenizer_gguf": self.gguf_file or ""},
            "export_model": {"facts": lambda wc: self.exports[wc.export]},
            "continual_pretrain": {"cpt": lambda wc: self.cpt_train(wc.freeze, wc.seed)},
            # the items are built to fit the models' window: the base's, which every expansion keeps
            "task_data": {"eval": canonical(cfg["eval"]), "window": self.base_config.get("max_position_embeddings")},
            "evaluate": {"eval": self.eval_params},
            "evaluate_init": {"eval": self.eval_params},
            "evaluate_sft": {"eval": self.eval_params},
            "init_loss": {"eval": self.fixed_slice, **device},
            "samples": {"names": lambda wc: list(self.sample_models(wc.stage)),
                        "settings": canonical(cfg["report"]["samples"]), **device},
            "seams": {"eval": self.seam_slice, "freezes": lambda wc: list(self.trained_rows(wc.model)), **device},
            "layer_profile": {"eval": self.seam_slice, **device},
            "report": self.report_params(),
            "growth_scratch": growth, "growth_small": growth, "growth_grown": growth,
            "growth_report": {"runs": self.growth_runs},
            "sft_data": {"data": canonical(cfg["sft"]["data"])},
            "sft": {"train": without_report_to(cfg["sft"].get("train", {})),
                    "dlo": lambda wc: canonical(cfg["sft"]["dlo"]) if wc.variant == "dlo" else None},
            "sft_report": {"runs": self.sft_runs, "expansion": cfg["sft"]["expansion"]},
            "race_rung": {"cpt": lambda wc: self.race_rung_train(wc.freeze, wc.rung)},
            "race_decide": self.race_params, "race_cooldown": self.race_params, "race_bracket": self.race_params,
        }
        if self.pretrain_base:
            specs["pretrain_base"] = {"model": canonical(cfg["base"]["model"]), "train": without_report_to(cfg["base"]["train"]),
                                      "seed": cfg["seed"]}
            specs["base_training_curve"] = {"plateau": canonical(cfg["base"]["train"]["plateau"])}
        if self.import_base:
            specs["import_base"] = {"dtype": cfg["base_model"]["dtype"],
                                    "max_shard_mb": cfg["reconstruct"]["max_shard_mb"]}
        return specs

    def rule_params(self, rule: str) -> dict[str, Any]:
        """The rule's params: a value, or a function of the job's wildcards (Snakemake passes ``input`` too to a
        function that names it)."""
        if rule == "manifest":
            return self.manifest_params()
        return dict(self._param_specs.get(rule, {}))

    def manifest_params(self) -> dict[str, Any]:
        """Every artifact with what made it, and the config; the race's later rungs are known from its decisions,
        once they are made."""
        artifacts = ((lambda wildcards, input: self.artifacts(self.race_decisions_made())) if self.race
                     else self.artifacts())
        return {"artifacts": artifacts, "config": canonical(self.config), "base": self.base_source}

    def params(self, rule: str, **wildcards) -> dict[str, Any]:
        """The params of one job of ``rule``, its wildcards given."""
        wc = SimpleNamespace(**{k: str(v) for k, v in wildcards.items()})
        return {name: value(wc) if callable(value) else value for name, value in self.rule_params(rule).items()}

    # ---- every job, for the manifest

    def jobs(self, race_decisions: list[dict] | None = None) -> list[Job]:
        """Every job of the run but the manifest's own: its outputs, and what made them (its params and the inputs
        that are settings: the model it starts from, the corpus, the base). The race's rungs after the first follow
        from its decisions (``race_decisions``, in rung order: those made so far)."""
        out: list[Job] = []

        def add(rule, context=None, aligned=False, extra_outputs=(), **wc):
            outputs = self._paths(rule, aligned, **wc) + tuple(extra_outputs)
            out.append(Job(rule, outputs, self.params(rule, **wc), context or {}, aligned))

        cfg = self.config
        corpus = {"corpus": canonical(cfg["corpus"])}
        add("corpus")
        for split in ("train", "val"):
            add("tokens", {"tokenizer": self.tokenizer_dir}, split=split)
        if self.pretrain_base:
            add("tokenizer", corpus)
            add("pretrain_base", corpus)
            add("base_training_curve")
        if self.import_base:
            add("import_base", {"source": self.gguf_file})
            add("base_info", {"base_model": canonical(cfg["base_model"]), "eval": self.fixed_slice})
        for aligned, spaces in self.artifact_bases:
            base = {"base_model": self.aligned_base_dir if aligned else self.base_dir}
            if aligned:
                add("align_base", {"base_model": self.base_dir})
            add("extract_weights", base, aligned)
            if "svd" in spaces:
                for m in self.family.linear:
                    add("svd", base, aligned, matrix=m)
                add("svd_continuity", base, aligned)
            for space in spaces:
                folder = next(f for f, sp in PREDICTOR_SPACES.items() if sp == space)
                add("predictor", {**base, "space": space}, aligned, predictor=folder)
                add("predictor_heldout", {**base, "space": space}, aligned, space=space)
        if self.auto_placed:
            add("layer_profile", {"base_model": self.base_dir})
        for model in self.init_models[1:]:
            add("generate_layers", {"base_model": self.method_base_dir(model.partition("/")[0])}, model=model)
            add("reconstruct", {"method": self.generation_params(model)}, model=model)
        add("task_data", {"tokenizer": self.tokenizer_dir})
        for method, freeze, seed in self.runs:
            add("continual_pretrain", {"model": self.cpt_model(method, seed)}, method=method, freeze=freeze, seed=seed)
            add("evaluate", {"model": fill(OUTPUTS["continual_pretrain"]["final"], method=method, freeze=freeze,
                                           seed=seed)}, method=method, freeze=freeze, seed=seed)
        for model in self.init_models:
            add("init_loss", {"model": self.init_model(model)}, model=model)
            if cfg["eval"]["step0"]:
                add("evaluate_init", {"model": self.init_model(model)}, model=model)
        for model in self.first_seed_models:
            add("seams", {"trained": self.trained_rows(model)}, model=model)
        for stage in self.sample_stages:
            add("samples", {"models": self.sample_models(stage)}, stage=stage)
        for name in self.exports:
            add("export_gguf", {"model": self.export_inputs(name)["model"]}, export=name)
            add("export_model", {"model": self.export_inputs(name)["model"]}, export=name)
        add("report", {"report": canonical(cfg["report"])}, extra_outputs=self.report_panel_outputs().values())
        if self.growth:
            for s in range(cfg["growth"]["seeds"]):
                add("growth_scratch", seed=s)
            for g, d, s in sorted({(g, d, s) for _, g, d, s in self.growth_runs}):
                add("growth_small", g=g, d=d, seed=s)
            for o, g, d, s in self.growth_runs:
                add("growth_grown", operator=o, g=g, d=d, seed=s)
            add("growth_report")
        if self.sft:
            add("sft_data")
            for variant, seed in self.sft_runs:
                add("sft", {"model": self.sft_model(variant, seed)}, variant=variant, seed=seed)
                add("evaluate_sft", variant=variant, seed=seed)
            add("sft_report")
        if self.race:
            self._race_jobs(add, race_decisions or [])
        return out

    def _race_jobs(self, add, decisions: list[dict]) -> None:
        """Each rung's candidates (all at the first rung, then the survivors of the decision before), the decisions
        made so far and the next one, the winner's cooldown and the bracket."""
        racing = self.race_candidates
        for rung in range(1, len(self.config["race"]["rungs"]) + 1):
            for candidate in racing:
                method, freeze = candidate.split("/")
                add("race_rung", self.race_rung_inputs(method, freeze, rung), method=method, freeze=freeze,
                    rung=rung)
            add("race_decide", rung=rung)
            if rung > len(decisions) or decisions[rung - 1]["over"]:
                break
            racing = decisions[rung - 1]["survivors"]
        add("race_cooldown")
        add("race_bracket")

    def race_decisions_made(self) -> list[dict]:
        """The race's decisions on disk, in rung order, up to the one that ended it."""
        import json

        made = []
        for rung in range(1, len(self.config["race"]["rungs"]) + 1):
            path = fill(OUTPUTS["race_decide"]["decision"], rung=rung)
            if not os.path.exists(path):
                break
            with open(path) as f:
                made.append(json.load(f))
            if made[-1]["over"]:
                break
        return made

    def artifacts(self, race_decisions: list[dict] | None = None) -> dict[str, dict]:
        """{artifact path: its rule and the settings that made it}, for results/manifest.json."""
        return {path: {"rule": job.rule, **job.settings} for job in self.jobs(race_decisions) for path in job.outputs}

    def _paths(self, rule: str, aligned: bool = False, **wildcards) -> tuple[str, ...]:
        paths = self.outputs(rule, aligned, **wildcards).values()
        if rule in PER_MATRIX:
            matrices = self.family.matrices if rule == "extract_weights" else self.family.linear
            return tuple(p.format(matrix=m) for p in paths for m in matrices)
        return tuple(paths)
