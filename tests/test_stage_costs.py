"""The stage cost model (deepen/workflow/stage_costs.py): its FLOPs are those torch counts when the stage's own code
runs, its memory holds what the stage holds, and the rules ask for what it gives."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepen.workflow import stage_costs as sc
from deepen.workflow.resources import STARTUP_MINUTES
from deepen.expand.lesa.predictor import BlockSource, train_predictor
from conftest import REPO, copy_workflow, snakemake

TINY = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=512)


def llama(layers=4, attention="eager"):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**{**TINY, "num_hidden_layers": layers}, max_position_embeddings=256,
                         tie_word_embeddings=False)
    config._attn_implementation = attention
    return LlamaForCausalLM(config)


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_a_forward_pass_costs_what_torch_counts():
    model, shape = llama().eval(), sc.Shape.of(TINY)
    batch = torch.randint(0, 512, (3, 64))
    with torch.no_grad():
        flops = counted(lambda: model(input_ids=batch))
    assert flops == pytest.approx(sc.forward_flops_per_token(shape, 4, 64) * batch.numel(), rel=1e-9)


@pytest.mark.parametrize("freeze", ["all", "new_only"])
def test_a_cpt_run_costs_what_torch_counts_for_its_steps(freeze):
    model, shape = llama(6).train(), sc.Shape.of(TINY)
    added = [4, 5]
    if freeze == "new_only":
        for name, p in model.named_parameters():
            p.requires_grad_(any(f"layers.{i}." in name for i in added))
    batch = torch.randint(0, 512, (2, 32))
    flops = counted(lambda: model(input_ids=batch, labels=batch).loss.backward())
    cost = sc.cpt_cost(shape, 6, added, freeze, {"steps": 1, "batch_size": 2, "seq_len": 32})
    assert flops == pytest.approx(cost.flops, rel=1e-9)


def test_a_predictor_epoch_costs_what_torch_counts(tmp_path):
    from deepen.models.tensorio import StreamingWriter

    layers, rank, width = 5, 24, 16
    path = tmp_path / "v.safetensors"
    blocks = torch.from_numpy(np.random.default_rng(0).standard_normal((layers, rank, width)).astype(np.float32))
    with StreamingWriter(path, [("V", list(blocks.shape), torch.float32)]) as writer:
        writer.write("V", blocks)
    cfg = {"hidden": 32, "lr": 1e-3, "batch_size": 8, "epochs": 2, "norm_weight": 5e-4, "seed": 0}
    flops = counted(lambda: train_predictor(BlockSource(path, "V"), cfg, log=lambda s: None))
    shape = sc.Shape.of({**TINY, "num_hidden_layers": layers, "hidden_size": width, "num_attention_heads": 1,
                         "num_key_value_heads": 1, "head_dim": rank})
    # k_proj of this shape: rank × width blocks, the rows of V
    cost = sc.predictor_cost(shape, "k_proj", cfg)
    assert flops == cost.flops


@pytest.mark.parametrize("layers,rows,columns", [(6, 512, 128), (4, 768, 256), (12, 256, 256)])
def test_the_svds_modelled_peak_holds_what_it_allocates(tmp_path, layers, rows, columns):
    """numpy's and LAPACK's work arrays are numpy arrays, which tracemalloc sees. The model is the GPU route's float64
    Gram matrix; the CPU's float32 one takes about 60% of it."""
    import tracemalloc

    from deepen.expand.lesa.svd import WEIGHTS_KEY, svd_stage
    from deepen.models.tensorio import StreamingWriter

    with StreamingWriter(tmp_path / "w.safetensors", [(WEIGHTS_KEY, [layers, rows, columns], torch.float32)]) as w:
        w.write(WEIGHTS_KEY, torch.randn(layers, rows, columns, generator=torch.Generator().manual_seed(0)))
    tracemalloc.start()
    try:
        svd_stage(tmp_path / "w.safetensors", tmp_path / "s.safetensors", tmp_path / "s.json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    shape = sc.Shape.of({**TINY, "num_hidden_layers": layers, "hidden_size": columns, "intermediate_size": rows})
    modelled = sc.svd_cost(shape, "gate_proj").peak_bytes
    assert 0.4 * modelled < peak <= modelled


def test_the_forward_peak_holds_the_weights_and_the_logits():
    shape = sc.Shape.of(TINY)
    assert sc.forward_peak_bytes(shape, 4, 2, 64) > 4 * shape.params(4) + 2 * 64 * 512 * 4
    # checkpointing keeps one hidden state per layer: less memory, the same weights and optimizer state
    full = sc.training_peak_bytes(shape, 6, 6, 4, 128)
    checkpointed = sc.training_peak_bytes(shape, 6, 6, 4, 128, checkpointing=True)
    assert 16 * shape.params(6) < checkpointed < full


def test_a_job_on_a_gpu_asks_the_host_for_the_model_not_the_training_state():
    shape = sc.Shape.of({**TINY, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                         "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256})
    cost = sc.cpt_cost(shape, 24, list(range(16, 24)), "all", {"steps": 10, "batch_size": 8, "seq_len": 2048})
    on_cpu, on_gpu = sc.memory_mb(cost), sc.memory_mb(cost, on_gpu=True)
    assert on_gpu * 2**20 == pytest.approx(1.25 * 4 * shape.params(24) + sc.INTERPRETER_BYTES, abs=2**20)
    assert on_cpu > 3 * on_gpu
    assert sc.memory_mb(cost, on_gpu=True, processes=8) == pytest.approx(8 * on_gpu, abs=8)


def test_the_minutes_grow_with_the_work_and_start_at_the_startup():
    cost = sc.StageCost("x", 1, flops=1.2e12, bytes_read=6e9, bytes_written=0, peak_bytes=0)
    # 60 s of products at 2e10 FLOP/s, 60 s of reading at 1e8 B/s
    assert sc.minutes(cost, 2e10, 1e8, safety=1) == STARTUP_MINUTES + 2
    assert sc.minutes(cost, 2e10, 1e8, safety=3) == STARTUP_MINUTES + 6


def resolved(path="config/quick.yaml") -> dict:
    import yaml

    from deepen.workflow.config_check import default_filling_validator

    config = yaml.safe_load((REPO / "config/toy.yaml").read_text())
    config.update(yaml.safe_load((REPO / path).read_text()) or {})
    default_filling_validator()(yaml.safe_load((REPO / "config/schema.yaml").read_text())).validate(config)
    return config


def test_the_workflow_costs_name_every_tensor_stage_with_its_jobs():
    from deepen.workflow.design import base_model_config, init_models, runs

    config = resolved()
    costs = sc.workflow_costs(config, base_model_config(config))
    assert {"extract_weights", "svd", "predictor", "predictor_heldout", "align_base", "generate_layers",
            "reconstruct", "init_loss", "seams", "continual_pretrain", "evaluate"} <= set(costs)
    assert costs["init_loss"].jobs == len(init_models(config))
    assert costs["continual_pretrain"].jobs == len(runs(config))
    assert costs["continual_pretrain"].flops > costs["init_loss"].flops > 0


def rule_resources(workdir, overrides: dict, rule: str) -> dict:
    """The resources a dry run gives the first job of ``rule``."""
    import re

    import yaml

    copy_workflow(workdir)
    (workdir / "override.yaml").write_text(yaml.safe_dump(overrides))
    out = snakemake(workdir, "-n", "--configfile", "config/quick.yaml", "override.yaml", "--cores", "1").stdout
    block = out[out.index(f"rule {rule}:"):]
    found = re.search(r"resources: (.*)", block).group(1)
    return {k: v for k, _, v in (item.partition("=") for item in found.split(", "))}


def test_the_rules_ask_for_what_the_cost_model_gives(tmp_path):
    """The step-0 loss rule's run time is the model's for the config's slice, and grows with it."""
    from deepen.workflow.design import base_model_config

    runtimes = []
    for tokens, folder in ((4096, "small"), (4096 * 10**4, "big")):
        config = resolved()
        config["cpt"] = {**config["cpt"], "eval_tokens": tokens}
        cost = sc.workflow_costs(config, base_model_config(config))["init_loss"]
        res = config["resources"]
        found = rule_resources(tmp_path / folder, {"cpt": config["cpt"]}, "init_loss")
        assert int(found["runtime"]) == sc.minutes(cost, res["train_flops_per_second"], res["io_bytes_per_second"],
                                                   res["runtime_safety"])
        assert int(found["mem_mb"]) == sc.memory_mb(cost, floor=2048)  # rules/eval.smk: the floor of a model loaded
        runtimes.append(int(found["runtime"]))
    assert runtimes[1] > runtimes[0] + 10
