"""deepen: depth up-scaling of decoder-only language models.

The Python API, the same as the ``deepen`` command's:

    import deepen
    deepen.plan("HuggingFaceTB/SmolLM2-135M", "llama_pro")           # the layer plan, no tensor read
    deepen.expand("HuggingFaceTB/SmolLM2-135M", "out/llama_pro")      # one expanded model folder
    deepen.check("my.yaml")                                          # the workflow's config check
    print(deepen.costs("my.yaml", gpu_memory_gb=80)[0])              # each stage's time, memory, disk

Everything is imported when first called: ``import deepen`` stays cheap.
"""

from __future__ import annotations

import types
from pathlib import Path

from deepen import expand as _expand_stages

__version__ = "0.1.0"


def plan(base, method: str = "llama_pro", options: dict | None = None, mergekit_config=None) -> list[dict]:
    """The layer plan ``method`` makes of ``base``, built from the base's config alone.

    Args:
        base: a model folder, a ``.gguf`` file or a Hub name (``owner/name``), as ``base_model`` takes them.
        method: a paper's method with the default comparison's settings (``llama_pro``, ``solar``, ``lesa``,
            ``opt_deus``, ``avg_deus``) or a generator's name (``copy``, ``average``, ...).
        options: method options over those settings, as a config's method entry gives them.
        mergekit_config: a mergekit passthrough config: the method it describes.

    Returns:
        One entry per output layer: ``{"from": "base", "layer": i}`` or ``{"from": "new", "id": k, "between":
        [i, j]}``.
    """
    from deepen.workflow.expansion import plan_of

    return plan_of(base, method, options, mergekit_config)


def expand_model(base, out, method: str = "llama_pro", options: dict | None = None, mergekit_config=None, *,
           work_dir=None, device: str = "auto", force: bool = False, predictor: dict | None = None) -> Path:
    """Make one expanded model, through the stage functions the workflow runs, without Snakemake. Called as
    ``deepen.expand(...)`` too: ``deepen.expand`` is also the package of the expansion stages, which calls this.

    Args:
        base: a model folder, a ``.gguf`` file or a Hub name.
        out: the model folder to write (weights, config, tokenizer, card, plan, and a mergekit config where copies
            make the model); refused if it exists, unless ``force``.
        method, options, mergekit_config: as for :func:`plan`.
        work_dir: keep the intermediate artifacts (SVD, predictors, new layers) there, in the workflow's
            ``results/`` layout; a temporary folder by default.
        device: ``auto``, ``cpu`` or ``cuda``: where the tensor stages compute.
        predictor: LESA's predictor settings over the schema's defaults (``{"epochs": 5}``).

    Returns:
        The folder written.

    Raises:
        deepen.workflow.config_check.ConfigError: an unknown method or option, a base that cannot be read.
        FileExistsError: ``out`` exists and ``force`` is not set.
    """
    from deepen.workflow.expansion import expand_to

    return expand_to(base, out, method, options, mergekit_config, work_dir=work_dir, device=device, force=force,
                     predictor=predictor)


def check(*configs) -> dict:
    """Check config files (merged in order, as ``snakemake --configfile A B`` merges them) as the workflow does.

    Returns:
        The config with every default filled in.

    Raises:
        deepen.workflow.config_check.ConfigError: one line per problem, naming the key.
    """
    from deepen.workflow.cli import load_configs
    from deepen.workflow.config_check import validate_config
    from deepen.workflow.expansion import workflow_dir

    root = workflow_dir()
    return validate_config(load_configs([str(c) for c in configs]), root / "config" / "schema.yaml",
                           root / "config" / "tasks", load_datasets=False)


def costs(*configs, gpu_memory_gb: float | None = None) -> tuple[str, bool]:
    """Each stage's time, memory and disk for the config files given, before anything runs.

    Args:
        configs: config files, merged in order.
        gpu_memory_gb: one GPU's memory: each stage's peak is checked against it.

    Returns:
        The table as text, and whether every stage fits.
    """
    from deepen.workflow.preflight import cost_table

    return cost_table(check(*configs), gpu_memory_gb=gpu_memory_gb)


class _CallableStages(types.ModuleType):
    """``deepen.expand`` is the package of the expansion stages, and called it is :func:`expand_model`: a module of
    this class, so that it stays the package whatever is imported first."""

    def __call__(self, *args, **kwargs):
        return expand_model(*args, **kwargs)


_expand_stages.__class__ = _CallableStages
