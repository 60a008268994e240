"""A base model named as the Hub names it (deepen/models/hub.py): read from a Hugging Face cache folder built here,
offline, in the layout huggingface_hub reads (models--OWNER--NAME/refs/main -> snapshots/COMMIT/); the commit lands
in the manifest and the cards. Offline and uncached: one config error naming the repo, the cache and the fetch
command."""

import json
import os
import shutil

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake
from deepen.workflow.config_check import ConfigError, validate_config

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ID = "tiny-org/tiny-llama"


def hub_cache(root, model_dir, repo=REPO_ID, commit=COMMIT):
    """``model_dir`` as the cached snapshot of ``repo`` at ``commit`` (main points at it)."""
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, folder / "snapshots" / commit)
    return root


@pytest.fixture
def cache(tiny_bpe_llama_dir, tmp_path, monkeypatch):
    root = hub_cache(tmp_path / "hub", tiny_bpe_llama_dir)
    (root / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n# tiny\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from deepen.models import hub

    hub.resolve.cache_clear()
    return root


def config(base):
    cfg = yaml.safe_load((REPO / "config/quick.yaml").read_text())
    # the fewest jobs that reach the manifest and an export: one step-0 row, the base's CPT of two steps
    cfg.update(base_model=base, methods={"llama_pro": {"generator": "copy", "placement": {"interval": 2},
                                                       "zero_init": True, "cpt": False}},
               growth={"enabled": False}, sft={"enabled": False}, race={"enabled": False},
               eval={"tasks": ["deepen_ppl"], "step0": False, "max_docs": 4, "ppl_chunk_chars": 200, "limit": 4},
               cpt={**cfg["cpt"], "steps": 2, "eval_interval": 1, "eval_tokens": 256, "seq_len": 32},
               export={"gguf": ["llama_pro"], "type": "f16"})
    cfg["report"] = {**cfg["report"], "target_loss": "base/all", "reference": "base", "samples": {"prompts": []},
                     "claims": []}
    cfg.pop("base", None)
    return cfg


def check(cfg):
    return validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)


def test_a_cached_hub_name_is_read_from_its_snapshot(cache):
    from deepen.workflow.jobs import JobTable

    table = JobTable(check(config(REPO_ID)), str(REPO))
    assert table.base_dir.endswith(f"snapshots/{COMMIT}")
    assert table.base_source == {"kind": "hub", "repo": REPO_ID, "revision": "main", "commit": COMMIT}
    assert table.base_license == "apache-2.0"
    # a pinned revision: the commit itself
    pinned = JobTable(check(config({"hub": REPO_ID, "revision": COMMIT})), str(REPO))
    assert pinned.base_source["commit"] == COMMIT


def test_an_uncached_name_offline_is_one_error_with_the_fetch_command(cache):
    with pytest.raises(ConfigError) as e:
        check(config("nobody/not-cached"))
    message = str(e.value)
    assert "nobody/not-cached" in message and str(cache) in message and "HF_HUB_OFFLINE is set" in message
    assert "hf download nobody/not-cached" in message
    with pytest.raises(ConfigError, match="revision v9"):
        check(config({"hub": REPO_ID, "revision": "v9"}))


def test_a_quantised_checkpoint_is_refused_with_the_reason(tiny_bpe_llama_dir, tmp_path):
    folder = tmp_path / "gptq"
    shutil.copytree(tiny_bpe_llama_dir, folder)
    cfg_file = folder / "config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()),
                                    "quantization_config": {"quant_method": "gptq", "bits": 4}}))
    with pytest.raises(ConfigError, match=r"is quantised \(gptq\)"):
        check(config(str(folder)))


def test_the_workflow_runs_from_a_hub_name_and_records_the_commit(cache, tmp_path):
    """The whole run, offline, from the cache: the manifest names the repo and commit, the expanded model's card and
    the exported folder's card carry the Hub's metadata (parsed as YAML) with the base and its license."""
    from deepen.models.card import front_matter

    work = copy_workflow(tmp_path / "work")
    (work / "hub.yaml").write_text(yaml.safe_dump(config(REPO_ID)))
    snakemake(work, "--cores", "2", "--configfile", "hub.yaml", timeout=900)
    manifest = json.loads((work / "results/manifest.json").read_text())
    assert manifest["base_model"] == {"kind": "hub", "repo": REPO_ID, "revision": "main", "commit": COMMIT}
    for card in (work / "results/models/llama_pro/README.md", work / "results/export/llama_pro/README.md"):
        meta = front_matter(card.read_text())
        assert meta["base_model"] == REPO_ID and meta["license"] == "apache-2.0", card
        assert meta["base_model_relation"] == "merge" and "depth-up-scaling" in meta["tags"]
        assert COMMIT in card.read_text()
    exported = (work / "results/export/llama_pro/README.md").read_text()
    assert "val loss at step 0" in exported
    assert (work / "results/export/llama_pro.gguf").stat().st_size > 0
