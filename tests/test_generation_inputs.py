"""Each generation job reads what its method declares, on the base the method runs on: for every option that changes
a generation job's inputs (``align``, ``shrink: auto``, ``svd: false``, a mergekit config, ``auto`` placement,
``zero_init``), in the job table and in the jobs Snakemake plans. The net for a bug that made the aligned LESA rows
read the unaligned base's SVD and predictors (their new layers were plain LESA's, and nothing said so)."""

import re

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake
from deepen.expand import methods as registry
from deepen.workflow.config_check import validate_config
from deepen.workflow.jobs import JobTable

# one row per option that changes what a generation job reads, on the quick config's tiny base
VARIANTS = {
    "lesa_plain": {"generator": "lesa", "placement": "top_half", "cpt": False},
    "lesa_aligned": {"generator": "lesa", "align": True, "placement": "top_half", "cpt": False},
    "lesa_calibrated": {"generator": "lesa", "shrink": "auto", "placement": "top_half", "cpt": False},
    "lesa_aligned_calibrated": {"generator": "lesa", "align": True, "shrink": "auto", "placement": "top_half",
                                "cpt": False},
    "lesa_nosvd_plain": {"generator": "lesa", "svd": False, "placement": "top_half", "cpt": False},
    "lesa_nosvd_aligned": {"generator": "lesa", "svd": False, "align": True, "placement": "top_half", "cpt": False},
    "avg_deus_aligned": {"generator": "average", "align": True, "placement": "top_half", "cpt": False},
    "copy_aligned_zero": {"generator": "copy", "align": True, "zero_init": True, "placement": "top_half",
                          "cpt": False},
    "opt_deus_auto": {"generator": "opt_deus", "placement": {"auto": 2}, "zero_init": True, "cpt": False},
    "appended": {"generator": "mergekit", "config": "config/mergekit/quick_appended.yaml", "cpt": False},
}


def variants_table() -> JobTable:
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    config["methods"] = {**config["methods"], **VARIANTS}
    validate_config(config, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)
    return JobTable(config, str(REPO))


def writers(jobs: JobTable) -> dict[str, object]:
    """{path: the job that writes it} (a folder's files count as the folder's)."""
    return {path: job for job in jobs.jobs() for path in job.outputs}


def written_by(path: str, by: dict):
    while path and path not in by:
        path = path.rpartition("/")[0]
    return by.get(path)


@pytest.mark.parametrize("model", list(VARIANTS))
def test_each_generation_job_reads_what_its_method_declares_on_its_own_base(model):
    jobs = variants_table()
    by = writers(jobs)
    opts = jobs.config["methods"][model]
    aligned = registry.runs_aligned(opts)
    base = jobs.aligned_base_dir if aligned else jobs.base_dir
    inputs = jobs.generation_inputs(model)
    # the artifacts are the ones the method declares, and each is read for every linear matrix type
    artifact_inputs = {k: v for k, v in inputs.items() if k not in ("base", "weights", "profile", "reads")}
    assert set(artifact_inputs) == set(registry.required_artifacts(opts))
    for name, files in artifact_inputs.items():
        declared = registry.required_artifacts(opts)[name]
        assert len(files) == len(jobs.family.linear)
        for path in files:
            job = written_by(path, by)
            assert job is not None, f"{model} reads {path}, which no job writes"
            assert job.rule == declared.rule, f"{model}: {path} is {job.rule}'s, declared {declared.rule}'s"
    assert inputs["base"] == base
    # every file made from a base comes from the jobs on the method's own base: the aligned base's for `align: true`
    for name, files in inputs.items():
        if name in ("base", "profile", "reads"):
            continue
        for path in files:
            job = written_by(path, by)
            assert job.context.get("base_model") == base, (
                f"{model} ({'aligned' if aligned else 'on the base'}) reads {path}, made on "
                f"{job.context.get('base_model')}")
            assert path.startswith("results/aligned/") == aligned, path
    # auto placement reads the base's layer profile; a mergekit config is read as the user's file
    assert ("profile" in inputs) == (model == "opt_deus_auto")
    assert inputs.get("reads") == (["config/mergekit/quick_appended.yaml"] if model == "appended" else None)


def dry_run_inputs(stdout: str, rule: str) -> dict[str, list[str]]:
    """{the job's model wildcard: its input files} for every ``rule`` job of a dry run's listing."""
    out = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", stdout):
        if not re.match(rf"(?:local)?rule {rule}:", block):
            continue
        inputs = re.search(r"^\s+input: (.*)$", block, re.M).group(1).split(", ")
        model = re.search(r"^\s+wildcards: .*model=([^,\n]+)", block, re.M).group(1)
        out[model] = inputs
    return out


def test_snakemake_plans_the_aligned_rows_on_the_aligned_base(tmp_path):
    """What Snakemake itself plans, for the quick config with every variant: an aligned row's generation job reads
    the aligned base's weights and artifacts only, the others the base's only."""
    workdir = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    config["methods"] = {**config["methods"], **VARIANTS}
    (workdir / "variants.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    stdout = snakemake(workdir, "-n", "--cores", "1", "--configfile", "variants.yaml",
                       "--forcerun", "generate_layers").stdout
    planned = dry_run_inputs(stdout, "generate_layers")
    assert set(VARIANTS) <= set(planned)
    for model, inputs in planned.items():
        aligned = registry.runs_aligned(config["methods"][model.partition("/")[0]])
        made = [p for p in inputs if p.startswith("results/") and not p.startswith("results/layer_profile")]
        assert made, model
        wrong = [p for p in made if p.startswith("results/aligned/") != aligned]
        assert not wrong, f"{model} ({'aligned' if aligned else 'on the base'}) reads {wrong}"
    # the aligned LESA row reads the aligned SVD and predictors, and the aligned held-out fits with shrink: auto
    assert "results/aligned/svd/q_proj.safetensors" in planned["lesa_aligned"]
    assert "results/aligned/predictor/q_proj.pt" in planned["lesa_aligned"]
    assert "results/aligned/predictor_heldout/svd/q_proj.json" in planned["lesa_aligned_calibrated"]
    assert "results/aligned/predictor_nosvd/q_proj.pt" in planned["lesa_nosvd_aligned"]


def test_the_quick_run_s_aligned_lesa_is_made_from_the_aligned_base_s_artifacts(quick_run):
    """The quick run's aligned rows: their layers are not plain LESA's, and what made them (the manifest) is the
    aligned base's."""
    import json

    from safetensors.torch import load_file

    manifest = json.loads((quick_run / "results/manifest.json").read_text())["artifacts"]
    plain = load_file(quick_run / "results/layers/lesa/new_layers.safetensors")
    aligned = load_file(quick_run / "results/layers/lesa_aligned/new_layers.safetensors")
    assert plain.keys() == aligned.keys()
    matrices = [k for k in plain if k.endswith("_proj")]
    assert matrices and not any(bool((plain[k] == aligned[k]).all()) for k in matrices)
    for model in ("lesa_aligned", "lesa_aligned_calibrated"):
        made = manifest[f"results/layers/{model}/plan.json"]["settings"]
        assert made["base_model"] == "results/aligned/base", made
    fits = quick_run / "results/aligned/predictor_heldout/svd/q_proj.json"
    assert json.loads(fits.read_text())["shrink_factor"] >= 0


def test_the_quick_run_matches_its_golden_record(quick_run):
    """Every model's layer plan, the norm of each tensor it generated and its step-0 loss are those of
    tests/golden/quick.json, within deepen/workflow/golden.py's tolerances: a change to any of them is deliberate and
    rewrites the record in the same commit (python -m deepen.workflow.golden write RUN_DIR tests/golden/quick.json)."""
    import json
    from pathlib import Path

    from deepen.workflow.golden import differences, record, run_models

    golden = json.loads((Path(__file__).parent / "golden" / "quick.json").read_text())
    found = record(quick_run, run_models(quick_run))
    assert set(found) >= {"base", "lesa", "lesa_aligned", "lesa_aligned_calibrated", "opt_deus_auto", "appended"}
    assert not differences(found, golden)
    # the comparison sees a moved loss, a moved norm and another plan
    moved = json.loads(json.dumps(golden))
    moved["lesa"]["step0_loss"] += 1e-3
    first = sorted(moved["lesa_aligned"]["norms"])[0]
    moved["lesa_aligned"]["norms"][first] *= 1.001
    moved["llama_pro"]["plan"] = moved["llama_pro"]["plan"][::-1]
    assert [d.split(":")[0] for d in differences(found, moved)] == ["lesa", "lesa_aligned", "llama_pro"]
