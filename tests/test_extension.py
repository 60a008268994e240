"""Extending deepen without touching its files: a method registered here, with an option of its own, is checked by
the config, planned, generated, reconstructed and trained for a step like the methods that ship."""

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from deepen.models.families import LLAMA
from deepen.workflow.config_check import ConfigError, validate_config
from deepen.expand.methods import METHODS, Option, method
from deepen.train.cpt import continue_pretraining
from deepen.expand.execute import generate_stage
from deepen.expand.reconstruct import reconstruct_stage
from deepen.models.tensorio import CheckpointReader

SCALE = Option({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, 0.5,
               "factor on the lower neighbour's linear matrices")


@pytest.fixture
def scaled_copy():
    """A method: each new layer is its lower neighbour with the linear matrices scaled by ``scale``."""

    @method("scaled_copy", options={"scale": SCALE})
    def make(opts, source, entry):
        layer = source.layer(entry["between"][0])
        return {m: t * opts["scale"] if m in source.arch.linear else t for m, t in layer.items()}

    yield "scaled_copy"
    del METHODS["scaled_copy"]


def quick_config(methods: dict) -> dict:
    cfg = yaml.safe_load((REPO / "config/quick.yaml").read_text())
    cfg["methods"] = methods
    cfg["report"].update(target_loss=next(iter(methods)), reference=next(iter(methods)), claims=[])
    cfg["sft"]["expansion"] = next(iter(methods))
    cfg["race"]["enabled"] = False
    cfg.pop("export", None)  # quick.yaml's exports name its own rows
    return cfg


def validate(cfg):
    return validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)


def test_the_config_checks_and_fills_a_registered_methods_options(scaled_copy):
    out = validate(quick_config({"half": {"generator": "scaled_copy", "placement": {"interval": 2}}}))
    assert out["methods"]["half"]["scale"] == 0.5  # the declared default, filled in
    with pytest.raises(ConfigError, match=r"methods\.half\.scale: 2 is greater than the maximum of 1"):
        validate(quick_config({"half": {"generator": "scaled_copy", "scale": 2}}))
    with pytest.raises(ConfigError, match=r"methods\.half\.scal: not an option of generator 'scaled_copy'; "
                                          r"did you mean 'scale'\?"):
        validate(quick_config({"half": {"generator": "scaled_copy", "scal": 0.5}}))
    with pytest.raises(ConfigError, match=r"methods\.half\.generator: unknown generator 'scaled_cop'; did you mean "
                                          r"'scaled_copy'\?"):
        validate(quick_config({"half": {"generator": "scaled_cop"}}))


def test_a_registered_method_runs_through_generation_reconstruction_and_cpt(scaled_copy, tiny_llama_dir, weights_dir,
                                                                          tmp_path):
    opts = {"generator": "scaled_copy", "placement": {"interval": 3}, "zero_init": False, "scale": 0.25}
    layers, model_dir = tmp_path / "layers", tmp_path / "model"
    generate_stage("quarter", opts, tiny_llama_dir, weights_dir, layers)
    reconstruct_stage("quarter", tiny_llama_dir, tiny_llama_dir, layers / "plan.json",
                      layers / "new_layers.safetensors", model_dir, max_shard_mb=1)
    plan = json.loads((layers / "plan.json").read_text())["plan"]
    assert [e.get("between") for e in plan if e["from"] == "new"] == [[2, 3], [5, None]]
    base, out = CheckpointReader(tiny_llama_dir), CheckpointReader(model_dir)
    for i, entry in enumerate(plan):
        if entry["from"] == "new":
            lower = entry["between"][0]
            for m in LLAMA.linear:
                want = 0.25 * base.get(LLAMA.tensor_name(lower, m))
                assert torch.allclose(out.get(LLAMA.tensor_name(i, m)), want), (i, m)

    tokens = (np.arange(8000) * 7 % 128).astype(np.uint16)
    cfg = {"steps": 1, "batch_size": 4, "seq_len": 16, "lr": 1e-3, "warmup_steps": 0, "weight_decay": 0.0,
           "grad_clip": 1.0, "schedule": "constant", "eval_interval": 1, "eval_tokens": 256, "checkpoint_interval": 100,
           "keep_checkpoints": False, "plateau": None, "seed": 0, "freeze": "new_only"}
    work = tmp_path / "cpt"
    continue_pretraining("quarter", model_dir, tokens, tokens[:2048], cfg, work, work / "final", work / "info.json")
    info = json.loads((work / "info.json").read_text())
    assert (info["generator"], info["added_layers"], info["steps"]) == ("scaled_copy", [3, 7], 1)
    assert [m["step"] for m in map(json.loads, (work / "metrics.jsonl").read_text().splitlines())] == [0, 1]


def test_the_options_every_method_takes_are_the_schemas_and_each_declared_option_is_described():
    from deepen.expand.methods import COMMON_OPTIONS

    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    assert set(schema["properties"]["methods"]["additionalProperties"]["properties"]) == set(COMMON_OPTIONS)
    assert {"copy", "average", "random", "solar", "stack", "lesa", "opt_deus"} <= set(METHODS)
    for spec in METHODS.values():
        assert all(option.description for option in spec.options.values()), spec.name


@pytest.fixture
def notes_panel():
    """A report panel: a figure of each row's final loss and a line per row, from a notes file the run writes."""
    from deepen.report import PANELS, panel

    @panel("notes", lambda facts: {"notes": "results/notes.txt"} if facts.config.get("notes") else None,
           params=lambda facts: {"title": facts.config["notes"]})
    def render(inputs, params, view):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        finals = {name: row["seeds"][0]["metrics"][-1]["val_loss"] for name, row in view.rows.items()}
        fig, ax = plt.subplots()
        ax.bar(list(finals), list(finals.values()))
        fig.savefig(view.out_dir / "notes.png")
        plt.close(fig)
        text = open(inputs["notes"][0]).read().strip()
        return [f"## {params['title']}", "", text, "", *(f"- `{n}`: {v:.2f}" for n, v in finals.items()), "",
                "![notes](notes.png)", ""]

    yield "notes"
    del PANELS["notes"]


def test_a_registered_report_panel_gets_its_inputs_and_writes_its_section(notes_panel, tmp_path):
    from deepen.report import RunFacts, panel_inputs, panel_params
    from deepen.report.build import build_report
    from deepen.report.panels import split_inputs
    from test_report import _write_run

    facts = RunFacts({"notes": "Notes of this run", "growth": {"enabled": False}, "sft": {"enabled": False},
                      "eval": {"tasks": ["deepen_ppl"]}}, "directory", list(LLAMA.linear), {}, ["deepen_ppl"])
    files = panel_inputs(facts)
    assert files == {"notes__notes": "results/notes.txt"}  # the only active panel: base from a directory, no LESA
    params = panel_params(facts)
    assert params == {"notes": {"title": "Notes of this run"}}
    off = RunFacts({**facts.config, "notes": None}, "directory", list(LLAMA.linear), {}, ["deepen_ppl"])
    assert "notes" not in panel_params(off)

    (tmp_path / "notes.txt").write_text("written by the run\n")
    runs = [_write_run(tmp_path / "runs", "base", "all", 0, [5.0, 4.8]),
            _write_run(tmp_path / "runs", "copy", "new_only", 0, [5.0, 4.5])]
    init = {}
    for name in ("base", "copy"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"val_loss": 5.0, "val_tokens": 100, "layers": 12,
                                                           "params": 1000}))
        init[name] = str(tmp_path / f"{name}.json")
    out = {k: tmp_path / "report" / name for k, name in (("csv", "summary.csv"), ("runs_csv", "runs.csv"),
                                                         ("md", "summary.md"), ("curves", "loss_curves.png"),
                                                         ("init_csv", "init.csv"))}
    build_report(runs, 4.6, "base", {"base_desc": "test", "cpt": {"steps": 10, "batch_size": 2, "seq_len": 8, "lr": 0.1}},
                 out, {"paths": init, "method_models": {"copy": ["copy"]}, "trained": ["copy"]}, claims=[],
                 panels=params, panel_files=split_inputs({"notes__notes": [str(tmp_path / "notes.txt")]}))
    md = out["md"].read_text()
    assert "## Notes of this run\n\nwritten by the run\n\n- `base/all`: 4.80\n- `copy/new_only`: 4.50" in md
    assert (tmp_path / "report/notes.png").stat().st_size > 0


def test_the_report_job_imports_no_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; import deepen.report.build, deepen.report.curves, deepen.report.growth_section, "
            "deepen.report.sft_section; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
