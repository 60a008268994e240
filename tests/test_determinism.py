"""Two complete quick runs with the same seed give identical models and numbers; another seed does not.
results/manifest.json records what made each artifact."""

import csv
import json

from conftest import copy_workflow, snakemake
from deepen.manifest import sha256_file


def model_hashes(workdir) -> dict[str, str]:
    manifest = json.loads((workdir / "results/manifest.json").read_text())
    return {f"{path}/{name}": f["sha256"] for path, artifact in manifest["artifacts"].items()
            if path.startswith("results/models/") for name, f in artifact["files"].items()
            if name.endswith(".safetensors")}


def summary_numbers(workdir) -> list[dict]:
    with open(workdir / "results/report/summary.csv") as f:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(f)]


def test_same_seed_gives_identical_results_and_another_seed_does_not(quick_run, quick_rerun, tmp_path):
    again = quick_rerun.workdir  # through SLURM where a cluster can be started here (conftest)
    other = copy_workflow(tmp_path / "other")
    snakemake(other, "--cores", "2", "--configfile", "config/quick.yaml", "--config", "seed=1")

    first, second, reseeded = model_hashes(quick_run), model_hashes(again), model_hashes(other)
    assert len(first) >= 7 and first == second
    assert first.keys() == reseeded.keys() and all(first[k] != reseeded[k] for k in first)
    assert summary_numbers(quick_run) == summary_numbers(again)
    finals = lambda rows: [r["final_val_loss_mean"] for r in rows]  # noqa: E731
    assert all(a != b for a, b in zip(finals(summary_numbers(quick_run)), finals(summary_numbers(other))))


def test_manifest_records_hashes_settings_code_and_packages(quick_run):
    manifest = json.loads((quick_run / "results/manifest.json").read_text())
    artifacts = manifest["artifacts"]
    summary = artifacts["results/report/summary.csv"]
    assert summary["sha256"] == sha256_file(quick_run / "results/report/summary.csv")
    model = artifacts["results/models/llama_pro"]
    assert model["settings"]["method"]["placement"] == {"interval": 2}
    assert all(len(f["sha256"]) == 64 for f in model["files"].values())
    run = artifacts["results/cpt/llama_pro/all/seed0/final"]["settings"]
    assert run["cpt"]["freeze"] == "all" and run["model"] == "results/models/llama_pro"
    assert len(manifest["code"]["source_sha256"]) == 64
    assert manifest["packages"]["torch"].startswith("2.13") and manifest["packages"]["snakemake"]
    assert manifest["config"]["seed"] == 0
