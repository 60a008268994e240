"""The report's optional panels. A panel is registered once with the files it reads (derived from the run's
facts: the workflow makes them the report job's inputs), the settings it needs, and a function that turns those
into markdown lines of summary.md (and any figure it writes beside it). A panel whose ``inputs`` gives None is
not part of the run."""

from __future__ import annotations

import os

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from deepen.core.paths import result_path

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class RunFacts:
    """What decides a run's panels and the files they read: the config (defaults filled in), how the base model
    comes (pretrain, directory or gguf), the base's linear matrix types, the artifacts the methods read
    ({name: file pattern}, deepen/expand/methods), the names of the embedded evaluation tasks, the artifacts the
    methods with ``align: true`` read on the aligned base, the models with a step-0 loss ('base' and every expanded
    model) and each method's model of its first seed (whose seams are measured)."""

    config: dict
    base_kind: str
    linear_matrices: list[str]
    method_artifacts: dict[str, str] = field(default_factory=dict)
    embedded_tasks: list[str] = field(default_factory=list)
    aligned_artifacts: dict[str, str] = field(default_factory=dict)
    init_models: list[str] = field(default_factory=list)
    first_seed_models: list[str] = field(default_factory=list)
    # the stages the samples are made at ('init', 'cpt'; none without prompts)
    sample_stages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportView:
    """What a panel's ``render`` may read of the report being built: its rows (per row name: method, freeze,
    info, seeds: {seed: {metrics, eval, info}}), the summary table, the settings, and the folder of summary.md."""

    rows: dict[str, dict]
    table: list[dict]
    settings: dict
    out_dir: Path


# inputs: facts -> {name: path or [paths]} (None: not in this run); params: facts -> settings (json);
# render: (inputs, params, view) -> markdown lines
Inputs = Callable[[RunFacts], "dict[str, str | list[str]] | None"]
Render = Callable[[dict, dict, ReportView], list[str]]


@dataclass(frozen=True)
class Panel:
    name: str
    inputs: Inputs
    render: Render
    params: Callable[[RunFacts], dict] = lambda facts: {}
    # the files it writes beside summary.md (results/report/), when it is part of the run
    writes: tuple[str, ...] = ()


PANELS: dict[str, Panel] = {}
# the separator of a panel's input names in the report rule (Snakemake names must be identifiers)
SEPARATOR = "__"


def panel(name: str, inputs: Inputs, params: Callable[[RunFacts], dict] | None = None, writes: tuple[str, ...] = ()):
    """Register the decorated ``render(inputs, params, view)`` as panel ``name``; panels appear in summary.md in the
    order they are registered. ``writes``: the files it always writes beside summary.md (the report job's outputs)."""

    def decorate(render: Render) -> Render:
        if SEPARATOR in name:
            raise ValueError(f"panel name {name!r} may not contain {SEPARATOR!r}")
        PANELS[name] = Panel(name, inputs, render, params or (lambda facts: {}), tuple(writes))
        return render

    return decorate


def active_panels(facts: RunFacts) -> list[Panel]:
    return [p for p in PANELS.values() if p.inputs(facts) is not None]


def panel_inputs(facts: RunFacts) -> dict[str, str | list[str]]:
    """Every active panel's files, named ``<panel>__<name>``: the report rule's inputs."""
    return {f"{p.name}{SEPARATOR}{key}": paths for p in active_panels(facts) for key, paths in p.inputs(facts).items()}


def panel_outputs(facts: RunFacts) -> dict[str, str]:
    """Every active panel's files beside summary.md, named ``<panel>__<file>`` (dots as underscores): the report
    rule's outputs."""
    report_dir = os.path.dirname(result_path("report", "md"))
    return {f"{p.name}{SEPARATOR}{file.replace('.', '_')}": f"{report_dir}/{file}"
            for p in active_panels(facts) for file in p.writes}


def panel_params(facts: RunFacts) -> dict[str, dict]:
    """{panel: its settings} of every active panel, in order: the report rule's params (and which panels run)."""
    return {p.name: p.params(facts) for p in active_panels(facts)}


def split_inputs(named: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """The report job's ``<panel>__<name>`` inputs back as {panel: {name: [paths]}}."""
    out: dict[str, dict[str, list[str]]] = {}
    for key, paths in named.items():
        name, sep, part = key.partition(SEPARATOR)
        if sep:
            out.setdefault(name, {})[part] = list(paths)
    return out


def render_panels(params: dict[str, dict], inputs: dict[str, dict[str, list[str]]], view: ReportView) -> list[str]:
    lines: list[str] = []
    for name, settings in params.items():
        lines += PANELS[name].render(inputs.get(name, {}), settings, view)
    return lines


def save_figure(fig, path, dpi: int = 110) -> None:
    """A panel's matplotlib figure, laid out, written as PNG at ``path`` (atomically) and closed."""
    import matplotlib.pyplot as plt

    from deepen.core.atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
