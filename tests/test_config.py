"""Bad configurations stop before any job runs, with a message naming the key and the problem."""

import copy

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake
from deepen.workflow.config_check import ConfigError, validate_config
from deepen.workflow.design import runs

DEFAULT = yaml.safe_load((REPO / "config/toy.yaml").read_text())


def check(cfg):
    return validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks")


def test_default_and_quick_configs_are_valid_and_get_defaults():
    for name in ("toy.yaml", "quick.yaml"):
        cfg = check(yaml.safe_load((REPO / "config" / name).read_text()))
        assert cfg["reconstruct"]["max_shard_mb"] == 2048
        assert cfg["cpt"]["schedule"] == "cosine"
        assert all("freeze" in m and "placement" in m for m in cfg["methods"].values())


def bad(edit):
    cfg = copy.deepcopy(DEFAULT)
    edit(cfg)
    return cfg


BAD_CONFIGS = {
    "unknown generator": (lambda c: c["methods"].update(x={"generator": "lesa_typo"}), "methods.x.generator: unknown generator 'lesa_typo'"),
    "negative steps": (lambda c: c["cpt"].update(steps=-5), "cpt.steps: -5 is less than the minimum of 1"),
    "misspelled key": (lambda c: c["cpt"].update(learning_rate=1e-3), "cpt.learning_rate: unknown key"),
    "misspelled top key": (lambda c: c.update(method={}), "method: unknown key; did you mean 'methods'?"),
    "missing base_model dir": (lambda c: c.update(base_model="/nonexistent/model"), "base_model: directory '/nonexistent/model' does not exist"),
    "unknown placement": (lambda c: c["methods"]["avg_deus"].update(placement="middle"), "methods.avg_deus.placement"),
    "position outside model": (lambda c: c["methods"]["avg_deus"].update(placement={"explicit": [8]}), "methods.avg_deus: placement.explicit: positions [8] outside"),
    "solar m too large": (lambda c: c["methods"]["solar"].update(m=4), "methods.solar: solar: m must satisfy"),
    "stack g < 2": (lambda c: c["methods"].update(stack={"generator": "stack", "g": 1, "freeze": "all"}),
                    "methods.stack.g: 1 is less than the minimum of 2"),
    "zero lr": (lambda c: c["cpt"].update(lr=0), "cpt.lr: 0 is less than or equal to the minimum of 0"),
    "target not a row": (lambda c: c["report"].update(target_loss="gstack"), "report.target_loss: 'gstack' is not a row"),
    "reference not a row": (lambda c: c["report"].update(reference="llama_pro_typo"), "report.reference: 'llama_pro_typo' is not a row"),
    "target freeze not run": (lambda c: c["report"].update(target_loss="avg_deus/all"), "report.target_loss: 'avg_deus/all' is not a row"),
    "zero seeds": (lambda c: c["cpt"].update(seeds=0), "cpt.seeds: 0 is less than the minimum of 1"),
    "plateau without window": (lambda c: c["base"]["train"].update(plateau={"min_rel_improvement": 0.01}), "base.train.plateau"),
    "unknown task": (lambda c: c["eval"].update(tasks=["hellaswagg"]),
                     "eval.tasks: 'hellaswagg' is neither a task of config/tasks, nor registered with lm-eval; close: hellaswag"),
    # LogiQA (an OpT-DeUS task) is neither cached here nor among the benchmark data deepen reads locally
    "registered task without its dataset": (lambda c: c["eval"].update(tasks=["deepen_ppl", "logiqa"]),
                                            "eval.tasks: 'logiqa': its dataset cannot be loaded (offline: "
                                            "HF_DATASETS_OFFLINE=1, so only cached datasets load): Couldn't reach "
                                            "'EleutherAI/logiqa'"),
    "few-shot count of a task not evaluated": (lambda c: c["eval"].update(num_fewshot={"arc_easy": 5}),
                                               "eval.num_fewshot: 'arc_easy' is not one of eval.tasks"),
    "wrong type": (lambda c: c["cpt"].update(batch_size="16"), "cpt.batch_size: '16' is not of type 'integer'"),
    "unknown freeze policy": (lambda c: c["methods"]["solar"].update(freeze=["new_only", "everything"]), "methods.solar.freeze"),
    "zero batch size": (lambda c: c["cpt"].update(batch_size=0), "cpt.batch_size: 0 is less than the minimum of 1"),
    "target loss not a number": (lambda c: c["report"].update(target_loss=[4.2]), "report.target_loss: [4.2] is not valid"),
    "target loss nan": (lambda c: c["report"].update(target_loss=float("nan")), "report.target_loss: nan is not a finite number"),
    "unknown matrix type": (lambda c: c["report"].update(continuity_matrices=["qkv_proj"]),
                            "report.continuity_matrices: 'qkv_proj' is not a weight matrix of 'llama'"),
    "batch not divisible by processes": (lambda c: c["cpt"].update(nproc=3), "cpt.batch_size: 16 is the global batch"),
    "micro batch not dividing a process's share": (lambda c: c["cpt"].update(nproc=2, micro_batch_size=3),
                                                   "cpt.micro_batch_size: 3 does not divide the 8 sequences"),
    "fsdp in one process": (lambda c: c["cpt"].update(strategy="fsdp"), "cpt.strategy: fsdp shards over several"),
    "batch not divisible over nodes": (lambda c: c["cpt"].update(nproc=2, nodes=3),
                                       "cpt.batch_size: 16 is the global batch and must divide evenly over 6"),
    "bf16 frozen weights without autocast": (lambda c: c["base"]["train"].update(frozen_dtype="bfloat16"),
                                             "base.train.frozen_dtype: bfloat16 frozen parameters need precision bf16"),
    "unknown precision": (lambda c: c["cpt"].update(precision="fp8"), "cpt.precision: 'fp8' is not one of"),
    # refused by the config check, before any job, not when the first training job starts
    "fp16 on jobs without a GPU": (lambda c: (c["resources"].update(device="cpu"),
                                              c["sft"]["train"].update(precision="fp16")),
                                   "sft.train.precision: fp16 needs a GPU"),
    "unknown attention": (lambda c: c["cpt"].update(attn_implementation="flash"), "cpt.attn_implementation: 'flash'"),
    "cuda without a GPU": (lambda c: c["resources"].update(device="cuda"),
                           "resources.device: cuda, but this machine has no GPU and resources.gpus requests none"),
    # flash_attn is not installed here
    "attention the base's class cannot take": (lambda c: c["cpt"].update(attn_implementation="flash_attention_2"),
                                               "cpt.attn_implementation: 'flash_attention_2' is not available for the "
                                               "base's family 'llama' (LlamaForCausalLM; available: sdpa, eager, or auto)"),
    "seq_len beyond positions": (lambda c: c["cpt"].update(seq_len=1024), "cpt.seq_len: 1024 exceeds"),
    "growth factor not dividing the layers": (lambda c: c["growth"].update(g=[3]), "growth.g: 3 does not divide"),
    "growth operators at no setting": (lambda c: c["growth"].update(operators_at={"g": 2, "d": 0.3}),
                                       "growth.operators_at: (g 2, d 0.3) is not one of the settings"),
    "growth runs with steps of their own": (lambda c: c["growth"]["train"].update(steps=5),
                                            "growth.train.steps: growth runs take their steps from the FLOPs budget"),
    "fractional token count": (lambda c: c["growth"].update(d=[0.1, 2.5]), "growth.d: a value of 1 or more"),
    "sft expansion not a method": (lambda c: c["sft"].update(expansion="llama_prp"),
                                   "sft.expansion: 'llama_prp' is not a method"),
    "no DLO layer left to route": (lambda c: c["sft"]["dlo"].update(unrouted_edge_layers=6),
                                   "sft.dlo.unrouted_edge_layers: 6 first and 6 last layers unrouted leave no routed layer"),
    "missing GGUF file": (lambda c: c.update(base_model={"gguf": "/nonexistent/model.gguf"}),
                          "base_model: GGUF file /nonexistent/model.gguf does not exist"),
    "GGUF package not installed": (lambda c: c.update(base_model={"package": "no-such-model-wheel"}),
                                   "base_model: base_model.package: 'no-such-model-wheel' is not installed"),
    "target not trained": (lambda c: c["methods"]["avg_deus"].update(cpt=False) or c["report"].update(target_loss="avg_deus"),
                           "report.target_loss: 'avg_deus' is not a row"),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_config_is_rejected_with_the_key_named(name):
    edit, message = BAD_CONFIGS[name]
    with pytest.raises(ConfigError) as err:
        check(bad(edit))
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["unknown generator", "negative steps", "misspelled key", "missing base_model dir",
                                  "registered task without its dataset"])
def test_snakemake_stops_before_any_job(tmp_path, name):
    workdir = copy_workflow(tmp_path)
    edit, message = BAD_CONFIGS[name]
    (workdir / "config/bad.yaml").write_text(yaml.safe_dump(bad(edit)))
    proc = snakemake(workdir, "--cores", "1", "--configfile", "config/bad.yaml", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()


def test_a_method_may_run_fewer_seeds_than_the_default():
    cfg = check({**copy.deepcopy(DEFAULT), "methods": {
        "llama_pro": {"generator": "copy", "freeze": ["new_only", "all"]},
        "lesa_nosvd": {"generator": "lesa", "svd": False, "seeds": 1}}})
    assert runs(cfg) == [("base", "all", 0), ("base", "all", 1), ("base", "all", 2),
                         ("llama_pro", "new_only", 0), ("llama_pro", "new_only", 1), ("llama_pro", "new_only", 2),
                         ("llama_pro", "all", 0), ("llama_pro", "all", 1), ("llama_pro", "all", 2),
                         ("lesa_nosvd", "new_only", 0)]


LLAMA_3_1_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
                "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def test_the_8b_slurm_config_is_valid_for_llama_3_1_8b(tmp_path):
    """config/llama8b_slurm.yaml with its paths pointed at Llama-3.1-8B's config.json and a corpus folder (the
    standard tasks' datasets are not cached here: that check is left out)."""
    import json

    cfg = yaml.safe_load((REPO / "config/llama8b_slurm.yaml").read_text())
    (tmp_path / "model").mkdir()
    (tmp_path / "model/config.json").write_text(json.dumps(LLAMA_3_1_8B))
    (tmp_path / "corpus").mkdir()
    cfg["base_model"], cfg["corpus"]["path"] = str(tmp_path / "model"), str(tmp_path / "corpus")
    out = validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)
    cpt = out["cpt"]
    assert (cpt["strategy"], cpt["nodes"], cpt["nproc"], cpt["precision"], cpt["frozen_dtype"]) == \
        ("fsdp", 2, 8, "bf16", "bfloat16")
    assert cpt["batch_size"] // (cpt["nodes"] * cpt["nproc"] * cpt["micro_batch_size"]) == 8  # accumulation steps
    assert [r[:2] for r in runs(out)] == [("base", "all"), ("llama_pro", "new_only"), ("solar", "new_only"),
                                           ("lesa", "new_only"), ("opt_deus", "new_only")]


def test_the_own_model_config_is_checked_as_a_user_would_run_it(tiny_llama_dir, tmp_path):
    """config/own_model.yaml with its two paths filled in passes the check; growth and SFT are off."""
    cfg = yaml.safe_load((REPO / "config/own_model.yaml").read_text())
    (tmp_path / "texts").mkdir()
    for i in range(50):
        (tmp_path / "texts" / f"doc{i}.txt").write_text(f"document {i}\n" * 20)
    cfg["base_model"] = str(tiny_llama_dir)
    cfg["corpus"]["path"] = str(tmp_path / "texts")
    cfg["cpt"]["seq_len"] = 64  # the tiny stand-in's context; a real base takes the file's 2048
    out = validate_config(cfg, REPO / "config/schema.yaml", REPO / "config/tasks", load_datasets=False)
    assert not out["growth"]["enabled"] and not out["sft"]["enabled"]
    assert out["cpt"]["nproc"] <= out["resources"]["gpus"]


def test_more_processes_than_gpus_is_refused():
    cfg = copy.deepcopy(DEFAULT)
    cfg["resources"] = {**cfg.get("resources", {}), "gpus": 1}
    cfg["cpt"] = {**cfg["cpt"], "nproc": 4}
    with pytest.raises(ConfigError, match=r"cpt.nproc: 4 processes, but each job has resources.gpus: 1"):
        check(cfg)
