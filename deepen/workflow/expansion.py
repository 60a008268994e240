"""One expansion without Snakemake: the jobs the workflow runs to make one expanded model (import, alignment,
extraction, SVD, predictors, held-out fits, generation, reconstruction), taken from the same job table — its paths,
params and settings — and run in order through the same stage functions the rules' scripts call. What ``deepen
expand`` and :func:`deepen.expand` run.

The method is named as a config names it: one of the default comparison's methods (``llama_pro``, ``solar``,
``lesa``, ``opt_deus``, ``avg_deus``: config/config.yaml holds their settings, which follow each paper), a generator
with its options (``{generator: copy, placement: {interval: 3}}``), or a mergekit passthrough config.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import yaml

from deepen.core.paths import fill, result_path
from deepen.expand.methods.lesa import PREDICTOR_SPACES
from deepen.workflow.config_check import ConfigError, validate_config
from deepen.workflow.jobs import JobTable

# the keys of a config's method entry that are about CPT, not about the expansion; and SOLAR's m, which the default
# config sets for SmolLM2's 30 layers: any other depth takes the method's default, the paper's L/4
_NOT_PRESET = ("freeze", "cpt", "seeds", "m")


def workflow_dir() -> Path:
    """Where the workflow's files are: the checkout deepen runs from (Snakefile beside the package), or the copy an
    installed wheel carries (deepen/_workflow)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent, package / "_workflow"):
        if (candidate / "Snakefile").exists() and (candidate / "config" / "schema.yaml").exists():
            return candidate
    raise FileNotFoundError(f"no workflow beside {package}: neither a checkout nor an installed wheel's _workflow")


def paper_methods() -> dict[str, dict]:
    """The default comparison's methods (config/config.yaml, docs/methods.md), by name: the settings ``deepen
    expand --method NAME`` takes."""
    config = yaml.safe_load((workflow_dir() / "config" / "config.yaml").read_text())
    return {name: {k: v for k, v in opts.items() if k not in _NOT_PRESET} for name, opts in config["methods"].items()}


def method_options(method: str, options: dict | None = None, mergekit_config=None) -> tuple[str, dict]:
    """(row name, generator options) of ``method`` (a paper's method or a generator's name) with ``options`` over its
    settings; a mergekit config makes the method ``mergekit``."""
    from deepen.expand import methods

    if mergekit_config:
        return "mergekit", {"generator": "mergekit", "config": str(Path(mergekit_config).resolve()), **(options or {})}
    papers = paper_methods()
    if method in papers:
        return method, {**papers[method], **(options or {})}
    if method in sorted(methods.METHODS):
        return method, {"generator": method, **(options or {})}
    raise ConfigError(f"unknown method {method!r}: one of the papers' ({', '.join(papers)}) or a generator "
                      f"({', '.join(sorted(methods.METHODS))})")


def base_spec(base: str):
    """``base_model`` as the config takes it, from what a user types: a .gguf file, a folder, or a Hub name."""
    if str(base).endswith(".gguf"):
        return {"gguf": str(Path(base).resolve())}
    return str(Path(base).resolve()) if Path(base).exists() else str(base)


def expansion_config(base, name: str, opts: dict, device: str = "auto", predictor: dict | None = None) -> dict:
    """A checked config of the one method: the schema's defaults for everything else (no training runs)."""
    config = {"base_model": base_spec(base) if isinstance(base, (str, Path)) else base,
              "methods": {name: {**opts, "cpt": False}},
              # required by the schema; nothing here trains
              "cpt": {"steps": 1, "batch_size": 1, "seq_len": 8, "lr": 1.0e-4, "eval_interval": 1},
              "report": {"target_loss": 1.0, "reference": "base", "claims": []},
              "resources": {"device": device}, "eval": {"step0": False},
              "growth": {"enabled": False}, "sft": {"enabled": False}, "race": {"enabled": False}}
    if predictor:
        config["predictor"] = dict(predictor)
    return validate_config(config, workflow_dir() / "config" / "schema.yaml", workflow_dir() / "config" / "tasks",
                           load_datasets=False)


@contextmanager
def _in(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_expansion(table: JobTable, model: str, say=print, threads: int = 1) -> dict[str, str]:
    """Run, in the working directory, every job the generation and reconstruction of ``model`` need, in the table's
    order; return {rule: what it wrote}. A job whose outputs exist is not run again."""
    from deepen.expand.align import align_stage
    from deepen.expand.execute import generate_stage
    from deepen.expand.lesa.predictor import predictor_heldout_stage, predictor_stage
    from deepen.expand.lesa.svd import svd_stage
    from deepen.expand.reconstruct import reconstruct_stage
    from deepen.expand.weights import extract_stage
    from deepen.models.gguf_import import import_base_stage

    method = model.partition("/")[0]
    aligned = table.method_aligned(method)
    inputs = table.generation_inputs(model)
    done: dict[str, str] = {}

    def step(rule, outputs, run, **wc):
        """Run one job of ``rule`` with its params from the table, unless its outputs exist."""
        if all(Path(p).exists() for p in outputs):
            return
        say(f"{rule} {' '.join(f'{k}={v}' for k, v in wc.items())}".strip())
        run(table.params(rule, **wc))
        done[rule] = outputs[0]

    if table.import_base:
        out = table.outputs("import_base")["model"]
        step("import_base", [out], lambda p: import_base_stage(table.gguf_file, out, p["dtype"], p["max_shard_mb"]))
    if aligned:
        out = table.outputs("align_base")["model"]
        step("align_base", [out], lambda p: align_stage(table.base_dir, out, device=p["device"]))
    base = table.method_base_dir(method)
    weights = result_path("extract_weights", "weights", aligned)
    for m in table.family.matrices:
        path = fill(weights, matrix=m)
        step("extract_weights", [path], lambda p, m=m, path=path: extract_stage(base, m, path))
    artifacts = {name: paths for name, paths in inputs.items() if name not in ("base", "weights", "profile", "reads")}
    if "svd" in artifacts:
        for m in table.family.linear:
            svd = table.outputs("svd", aligned, matrix=m)
            step("svd", [svd["svd"], svd["report"]], lambda p, m=m, svd=svd: svd_stage(
                fill(weights, matrix=m), svd["svd"], svd["report"], device=p["device"]), matrix=m)
    for folder, space in PREDICTOR_SPACES.items():
        if folder not in artifacts:
            continue
        for m, source in zip(table.family.linear, table.space_blocks(space, aligned)):
            out = table.outputs("predictor", aligned, predictor=folder, matrix=m)
            step("predictor", [out["models"], out["curves"]], lambda p, source=source, out=out: predictor_stage(
                source, p["key"], dict(p["train"]), out["models"], out["curves"], threads=threads,
                device=p["device"]), predictor=folder)
    if "predictor_heldout" in artifacts:
        space = "svd" if "svd" in artifacts else "nosvd"
        for m, source in zip(table.family.linear, table.space_blocks(space, aligned)):
            out = table.outputs("predictor_heldout", aligned, space=space, matrix=m)["fits"]
            step("predictor_heldout", [out], lambda p, source=source, out=out: predictor_heldout_stage(
                source, p["key"], dict(p["train"]), p["layers"], out, threads=threads, device=p["device"]),
                space=space)
    layers = table.outputs("generate_layers", model=model)
    step("generate_layers", list(layers.values()), lambda p: generate_stage(
        model, dict(p["options"]), base, Path(fill(weights, matrix=table.family.matrices[0])).parent,
        Path(layers["plan"]).parent, {name: Path(paths[0]).parent for name, paths in artifacts.items()},
        device=p["device"]), model=model)
    out = table.outputs("reconstruct", model=model)["model"]
    step("reconstruct", [out], lambda p: reconstruct_stage(model, base, table.tokenizer_dir, layers["plan"],
                                                           layers["new_layers"], out, p["max_shard_mb"],
                                                           dict(p["card"])), model=model)
    return done


def plan_of(base, method: str = "llama_pro", options: dict | None = None, mergekit_config=None) -> list[dict]:
    """The layer plan ``method`` makes of ``base`` (a folder, a GGUF file or a Hub name), built without tensors."""
    from deepen.expand.methods import build_plan, with_defaults

    name, opts = method_options(method, options, mergekit_config)
    config = expansion_config(base, name, opts)
    table = JobTable(config, str(workflow_dir()))
    if table.auto_placed:
        raise ConfigError(f"{name}: placement {opts.get('placement')} places by the base's layer profile, which is "
                          "measured on the run's corpus: run the workflow for it")
    return build_plan(with_defaults(config["methods"][name]), table.base_config["num_hidden_layers"])


def expand_to(base, out, method: str = "llama_pro", options: dict | None = None, mergekit_config=None,
              work_dir=None, device: str = "auto", force: bool = False, predictor: dict | None = None,
              say=print, threads: int = 1) -> Path:
    """Make the expanded model and write it to ``out`` (a model folder like the workflow's: weights, config,
    tokenizer, card, plan, and a mergekit config where one makes it). ``work_dir`` keeps the intermediate artifacts
    (the workflow's results/ layout; a temporary folder by default)."""
    import tempfile

    out = Path(out).resolve()
    if out.exists():
        if not force:
            raise FileExistsError(f"{out} exists (--force replaces it)")
        shutil.rmtree(out)
    name, opts = method_options(method, options, mergekit_config)
    config = expansion_config(base, name, opts, device, predictor)
    with tempfile.TemporaryDirectory(prefix="deepen-expand-") as tmp:
        work = Path(work_dir).resolve() if work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with _in(work):
            table = JobTable(config, str(workflow_dir()))
            if table.auto_placed:
                raise ConfigError(f"{name}: placement {opts.get('placement')} places by the base's layer profile, "
                                  "which is measured on the run's corpus: run the workflow for it")
            model = table.model_of(name, 0)
            run_expansion(table, model, say=say, threads=threads)
            shutil.copytree(table.outputs("reconstruct", model=model)["model"], out)
    return out
