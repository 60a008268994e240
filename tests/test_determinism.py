"""Another seed changes every seeded result (that the same seed gives identical ones: tests/test_slurm.py, whose
second run repeats the first's seeded part); results/manifest.json records what made each artifact."""

import csv
import json
import re

import yaml

from conftest import SEEDED_METHODS, copy_run, seeded_subset, snakemake
from deepen.workflow.manifest import sha256_file

EXPANDED_OR_TRAINED = ("results/models/", "results/cpt/")


def is_model(path: str) -> bool:
    return path == "results/base" or path.startswith(EXPANDED_OR_TRAINED)


def model_hashes(workdir) -> dict[str, str]:
    """sha256 of every weights file of the base, the expanded models and the CPT runs the run's manifest lists."""
    manifest = json.loads((workdir / "results/manifest.json").read_text())
    return {f"{path}/{name}": f["sha256"] for path, artifact in manifest["artifacts"].items()
            if is_model(path) for name, f in artifact.get("files", {}).items() if name.endswith(".safetensors")}


def method_of(path: str) -> str:
    return path.split("/")[2] if path.startswith(EXPANDED_OR_TRAINED) else "base"


def summary_numbers(workdir) -> list[dict]:
    with open(workdir / "results/report/summary.csv") as f:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(f)]


def test_another_seed_changes_every_seeded_result(quick_run, tmp_path):
    # The reseeded run starts from a copy of the first run, results and Snakemake's records: what does not depend
    # on the seed (the corpus, tokenizer, token files, task data) stays, everything that does reruns.
    other = copy_run(quick_run, tmp_path / "other")
    cfg = seeded_subset(yaml.safe_load((other / "config/quick.yaml").read_text()), seed=1)
    (other / "config/seed1.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(other, "--cores", "2", "--configfile", "config/seed1.yaml")
    ran = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))
    assert ran.isdisjoint({"corpus", "tokenizer", "tokens", "task_data"}) and "pretrain_base" in ran, ran

    first, reseeded = model_hashes(quick_run), model_hashes(other)
    assert {method_of(k) for k in reseeded} == {"base", *SEEDED_METHODS}
    assert reseeded.keys() <= first.keys() and all(first[k] != reseeded[k] for k in reseeded)
    finals = lambda workdir: {r["row"]: r["final_val_loss_mean"] for r in summary_numbers(workdir)}  # noqa: E731
    first_finals, reseeded_finals = finals(quick_run), finals(other)
    assert len(reseeded_finals) == 5  # base, llama_pro twice, lesa, random
    assert all(first_finals[row] != loss for row, loss in reseeded_finals.items())


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


def test_the_manifest_lists_every_output_of_the_run(quick_run):
    """Every file the quick run wrote under results/ is an artifact of the manifest or inside one (a folder), with
    the rule that made it: the manifest comes from the job table the rules take their outputs from."""
    artifacts = json.loads((quick_run / "results/manifest.json").read_text())["artifacts"]
    folders = [path + "/" for path, artifact in artifacts.items() if "files" in artifact]
    written = [str(p.relative_to(quick_run)) for p in (quick_run / "results").rglob("*")
               if p.is_file() and p.name != "manifest.json"]
    assert len(written) > 150
    unlisted = [p for p in written if p not in artifacts and not any(p.startswith(f) for f in folders)]
    assert not unlisted, unlisted
    assert {a["settings"]["rule"] for a in artifacts.values()} >= {
        "corpus", "tokens", "tokenizer", "pretrain_base", "seams", "growth_grown", "sft", "evaluate_sft", "report"}
    listed_missing = [p for p in artifacts if not (quick_run / p).exists()]
    assert not listed_missing, listed_missing
