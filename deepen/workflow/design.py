"""The run design: which rows the comparison has, which expanded models the methods make, which CPT and growth runs
train them, and what the base model is. Functions of the checked config (``base_model_config`` also reads the base's
config file or GGUF header); the job table, the report and the GPU runner read them."""

from __future__ import annotations

import json
from pathlib import Path

from deepen.core.schema import base_model_defaults, method_defaults, section_defaults
from deepen.expand import methods


BASE_ROW = ("base", "all")


def freeze_policies(opts: dict) -> list[str]:
    """A method's freeze policies, in config order: each is a row of its own."""
    freeze = {**method_defaults(), **opts}["freeze"]
    return [freeze] if isinstance(freeze, str) else list(freeze)


def trained_methods(config: dict) -> list[str]:
    """Methods whose models continue pretraining; the others (``cpt: false``) get only a step-0 val loss."""
    return [m for m, opts in config["methods"].items() if {**method_defaults(), **opts}["cpt"]]


def rows(config: dict) -> list[tuple[str, str]]:
    """(method, freeze policy) of every row of the comparison; the base's own CPT comes first."""
    return [BASE_ROW] + [(m, f) for m in trained_methods(config) for f in freeze_policies(config["methods"][m])]


def method_seeds(config: dict, method: str) -> int:
    return config["methods"][method].get("seeds", config["cpt"]["seeds"])


def model_name(config: dict, method: str, seed) -> str:
    """The expanded model a method's seed uses: one per method, or one per seed for generators that draw
    random numbers (``{method}/seed{n}``)."""
    return f"{method}/seed{seed}" if methods.is_stochastic(config["methods"][method]) else method


def init_models(config: dict) -> list[str]:
    """'base' and every expanded model, trained or not, in config order: each gets its step-0 val loss."""
    names = ["base"]
    for method in config["methods"]:
        for seed in range(method_seeds(config, method)):
            if (name := model_name(config, method, seed)) not in names:
                names.append(name)
    return names


def export_targets(config: dict) -> dict[str, dict]:
    """{export name: what it exports} of ``export.gguf``: an expanded model by name at step 0 ('lesa',
    'random/seed0'), or a CPT row ('lesa/new_only': its seed-0 model after CPT). The name is the entry with '/' as
    '-', a file name. Raises ValueError naming an entry the run does not make."""
    made_models = init_models(config)
    made_rows = [f"{m}/{f}" for m, f in rows(config)]
    out = {}
    for entry in config.get("export", {}).get("gguf", []):
        if entry in made_models:
            method = entry.split("/")[0]
            out[entry.replace("/", "-")] = {"model": entry, "method": method, "row": None}
        elif entry in made_rows:
            method, freeze = entry.split("/")
            out[entry.replace("/", "-")] = {"model": model_name(config, method, 0) if method != "base" else "base",
                                            "method": method, "row": entry, "freeze": freeze}
        else:
            raise ValueError(f"{entry!r} is not a model or CPT row of this run (models: {', '.join(made_models)}; "
                             f"rows: {', '.join(made_rows)})")
    return out


def runs(config: dict) -> list[tuple[str, str, int]]:
    """(method, freeze policy, seed) of every CPT run: ``cpt.seeds`` per row, unless the method sets its
    own ``seeds`` (an ablation may run fewer)."""
    out = []
    for method, freeze in rows(config):
        n = config["cpt"]["seeds"] if method == BASE_ROW[0] else method_seeds(config, method)
        out += [(method, freeze, seed) for seed in range(n)]
    return out


def base_model_kind(config: dict) -> str:
    """'pretrain' (the tiny Llama trained here), 'directory' (an HF model directory), 'hub' (a Hub repository,
    read from its cached snapshot) or 'gguf' (a GGUF file, imported into results/base)."""
    from deepen.models.hub import looks_like_repo

    base = config.get("base_model")
    if not base:
        return "pretrain"
    if isinstance(base, dict):
        return "hub" if "hub" in base else "gguf"
    return "hub" if looks_like_repo(base) else "directory"


def base_hub_model(config: dict, offline: bool | None = None):
    """The resolved Hub snapshot of a ``base_model`` that names a repository (deepen/models/hub.py)."""
    from deepen.models.hub import resolve

    base = config["base_model"]
    repo, revision = (base["hub"], base.get("revision", "main")) if isinstance(base, dict) else (base, "main")
    return resolve(repo, revision, offline)


def base_model_dir(config: dict) -> str:
    """The HF model directory an HF base is read from: the folder given, or the Hub snapshot's."""
    if base_model_kind(config) == "hub":
        return str(base_hub_model(config).path)
    return config["base_model"]


def base_source(config: dict) -> dict:
    """Where the base comes from, as a model card and the manifest state it: a Hub repository with the revision asked
    for and the commit read, a folder, a GGUF file, or the tiny Llama trained here."""
    kind = base_model_kind(config)
    base = config.get("base_model")
    if kind == "hub":
        hub = base_hub_model(config)
        return {"kind": kind, "repo": hub.repo, "revision": hub.revision, "commit": hub.commit}
    if kind == "gguf":
        from deepen.models.gguf_import import gguf_source

        return {"kind": kind, "file": gguf_source(base).name, **({"package": base["package"]} if "package" in base
                                                                else {})}
    return {"kind": kind, "path": base} if kind == "directory" else {"kind": kind}


def base_model_config(config: dict) -> dict:
    """The base model's HF config: read from ``base_model`` (a GGUF file's from its metadata alone), or what
    the tiny Llama will have."""
    kind = base_model_kind(config)
    if kind in ("directory", "hub"):
        return json.loads((Path(base_model_dir(config)) / "config.json").read_text())
    if kind == "gguf":
        from deepen.models.gguf_import import gguf_source, hf_config
        from deepen.models.gguf_file import read_header

        return {**hf_config(read_header(gguf_source(config["base_model"]))),
                "torch_dtype": {**base_model_defaults(), **config["base_model"]}["dtype"]}
    tokenizer = {**section_defaults("tokenizer"), **config.get("tokenizer", {})}
    return {"model_type": "llama", "vocab_size": tokenizer["vocab_size"], **config["base"]["model"]}


GROWTH_TRAIN_KEYS = ("batch_size", "seq_len", "lr", "eval_interval")


def growth_train(config: dict) -> dict:
    """Training settings of the growth runs: base.train's, with growth.train's on top; no plateau stop
    (every run spends its whole budget)."""
    merged = {**config["base"].get("train", {}), **config["growth"]["train"], "plateau": None}
    merged.pop("steps", None)
    return merged


def growth_operators_at(config: dict) -> tuple[int, float]:
    growth = config["growth"]
    at = growth["operators_at"]
    return (at["g"], at["d"]) if at else (growth["g"][0], growth["d"][len(growth["d"]) // 2])


def growth_label(d: float) -> str:
    """A growth timing as it appears in paths: 0.25, 2e+06."""
    return f"{d:g}"


def growth_runs(config: dict) -> list[tuple[str, int, str, int]]:
    """(operator, g, d label, seed) of every grown run: stack at every (g, d), the other operators at
    ``operators_at``."""
    growth = config["growth"]
    at_g, at_d = growth_operators_at(config)
    out = []
    for op in growth["operators"]:
        settings = [(g, d) for g in growth["g"] for d in growth["d"]] if op == "stack" else [(at_g, at_d)]
        out += [(op, g, growth_label(d), seed) for g, d in settings for seed in range(growth["seeds"])]
    return out


def race_candidates(config: dict) -> list[str]:
    """The rows a race runs, as ``method/freeze``: race.candidates (a method alone names its first freeze policy), or
    every CPT row but the base. Raises ValueError for a name that is no such row."""
    trained = [f"{m}/{f}" for m, f in rows(config) if (m, f) != BASE_ROW]
    named = config["race"].get("candidates")
    if named is None:
        return trained
    out = []
    for name in named:
        method, _, freeze = name.partition("/")
        if method not in trained_methods(config):
            raise ValueError(f"{name!r} is not a method with CPT rows (known: {', '.join(trained)})")
        row = f"{method}/{freeze or freeze_policies(config['methods'][method])[0]}"
        if row not in trained:
            raise ValueError(f"{name!r}: method {method!r} has no CPT row under freeze {freeze!r}")
        out.append(row)
    return out
