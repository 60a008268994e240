"""One module decides where a stage computes (resources.device): on the CPU every stage gives, with the device and
dtype named explicitly, exactly what it gave before; a GPU that is not there is refused."""

import json

import pytest
import torch
import yaml

from deepen.core.device import device_problems, evaluation_dtype, stage_device
from deepen.evaluate.seams import seams_stage
from deepen.evaluate.step0 import init_loss_stage

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")


def test_auto_and_cpu_compute_in_float32_on_the_cpu_here():
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: auto means cuda")
    assert stage_device("auto") == stage_device("cpu") == torch.device("cpu")
    assert evaluation_dtype(torch.device("cpu")) == torch.float32
    assert evaluation_dtype(torch.device("cuda")) == torch.bfloat16


@needs_no_gpu
def test_cuda_without_a_gpu_is_refused_by_the_stage_and_by_the_config_check():
    with pytest.raises(RuntimeError, match="resources.device is cuda, but this job sees no GPU"):
        stage_device("cuda")
    assert device_problems("cuda", 0) and device_problems("cuda", 1) == [] and device_problems("auto", 0) == []
    with pytest.raises(ValueError, match="'tpu' is not one of auto, cpu, cuda"):
        stage_device("tpu")


def test_step0_losses_and_seams_on_an_explicit_cpu_are_bit_identical_to_the_runs(quick_run, tmp_path):
    """The quick run computed them with resources.device auto (the CPU here); named explicitly, the same floats."""
    quick = yaml.safe_load((quick_run / "config/quick.yaml").read_text())
    cfg = {k: quick["cpt"][k] for k in ("seq_len", "eval_tokens", "batch_size")}
    for model in ("base", "lesa"):
        model_dir = quick_run / ("results/base" if model == "base" else f"results/models/{model}")
        init_loss_stage(model, model_dir, quick_run / "results/tokens/val.bin", cfg, tmp_path / f"{model}.json",
                        device="cpu")
        again, before = (json.loads(p.read_text()) for p in (tmp_path / f"{model}.json",
                                                              quick_run / f"results/init/{model}.json"))
        assert again["val_loss"] == before["val_loss"] and (again["device"], again["dtype"]) == ("cpu", "float32")
    seams_stage(quick_run / "results/models/lesa", quick_run / "results/layers/lesa/plan.json", {},
                quick_run / "results/tokens/val.bin", cfg, tmp_path / "seams.json", device="cpu")
    again = json.loads((tmp_path / "seams.json").read_text())["before"]
    assert again == json.loads((quick_run / "results/seams/lesa.json").read_text())["before"]


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_svd_predictor_and_generation_on_an_explicit_cpu_are_bit_identical_to_the_runs(quick_run, tmp_path):
    """LESA's SVD, its predictor and the layers of LESA and OpT-DeUS, with device cpu named: the run's tensors."""
    from deepen.expand.execute import generate_stage
    from deepen.expand.lesa.predictor import predictor_stage
    from deepen.expand.lesa.svd import svd_stage

    quick = yaml.safe_load((quick_run / "config/quick.yaml").read_text())
    results = quick_run / "results"
    svd_stage(results / "weights/k_proj.safetensors", tmp_path / "k_proj.safetensors", tmp_path / "k_proj.json",
              device="cpu")
    again, before = _tensors(tmp_path / "k_proj.safetensors"), _tensors(results / "svd/k_proj.safetensors")
    assert again.keys() == before.keys() and all(torch.equal(again[k], before[k]) for k in before)
    assert json.loads((tmp_path / "k_proj.json").read_text())["device"] == "cpu"

    train = {**quick["predictor"], "seed": quick["seed"]}
    predictor_stage(results / "svd/up_proj.safetensors", "V", train, tmp_path / "up.pt", tmp_path / "up.json",
                    device="cpu")
    again, before = (torch.load(p, weights_only=True)["state_dict"] for p in (tmp_path / "up.pt",
                                                                              results / "predictor/up_proj.pt"))
    assert all(torch.equal(again[k], before[k]) for k in before)
    assert (json.loads((tmp_path / "up.json").read_text())["train_loss"]
            == json.loads((results / "predictor/up_proj.json").read_text())["train_loss"])

    for method, artifacts in (("lesa", {"svd": results / "svd", "predictor": results / "predictor"}),
                              ("opt_deus", {})):
        opts = {k: v for k, v in quick["methods"][method].items() if k not in ("freeze", "seeds", "cpt")}
        generate_stage(method, opts, results / "base", results / "weights", tmp_path / method, artifacts,
                       device="cpu")
        again, before = (_tensors(d / "new_layers.safetensors") for d in (tmp_path / method, results / "layers" / method))
        assert again.keys() == before.keys() and all(torch.equal(again[k], before[k]) for k in before), method


def test_the_rules_that_request_a_gpu_are_those_whose_code_uses_one():
    """A rule whose params pass resources.device to its stage, or that trains (the Trainer takes the job's GPU),
    requests one in the job table; no other rule does."""
    import re
    from pathlib import Path

    import yaml

    from deepen.workflow.config_check import validate_config
    from deepen.workflow.jobs import JobTable

    repo = Path(__file__).parent.parent
    trains = {"pretrain_base.py", "continual_pretrain.py", "growth_run.py", "sft.py", "race_rung.py", "race_cooldown.py"}
    scripts = {}
    for smk in sorted((repo / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = list(re.finditer(r"^\s*(?:use rule (\w+) as (\w+) with|(?:rule|checkpoint) (\w+)):", text, re.M))
        for match, end in zip(starts, [m.start() for m in starts[1:]] + [len(text)]):
            script = re.search(r'script: "\.\./scripts/(\w+\.py)"', text[match.end():end])
            name = match.group(2) or match.group(3)
            scripts[name] = script.group(1) if script else scripts.get(match.group(1))
    config = yaml.safe_load((repo / "config/quick.yaml").read_text())
    config["methods"]["lesa_aligned"] = {"generator": "lesa", "align": True, "cpt": False}
    validate_config(config, repo / "config/schema.yaml", repo / "config/tasks", load_datasets=False)
    jobs = JobTable(config, str(repo))
    requests, uses = set(), set()
    for rule in {job.rule for job in jobs.jobs()}:
        params = jobs.rule_params(rule)
        if "gpu" in jobs.resources(rule):
            requests.add(rule)
        if "device" in params or "device" in params.get("eval", {}) or scripts[rule] in trains:
            uses.add(rule)
    assert requests == uses, (requests - uses, uses - requests)
    assert {"svd", "predictor", "predictor_heldout", "generate_layers", "init_loss", "seams",
            "evaluate", "continual_pretrain", "race_rung", "sft", "growth_grown", "align_base"} <= requests


def test_the_workflow_pins_the_cpu_vector_path_unless_the_user_chose_one():
    from deepen.core.device import CPU_VECTOR_PATH, pin_cpu_vector_path

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    env = {}
    assert pin_cpu_vector_path(env, avx2) == CPU_VECTOR_PATH and env == CPU_VECTOR_PATH
    # a CPU without AVX2 keeps its own path; a user's own setting of any of them wins
    assert pin_cpu_vector_path({}, "flags\t\t: fpu sse2 avx\n") == {}
    mine = {"MKL_CBWR": "AUTO"}
    assert pin_cpu_vector_path(mine, avx2) == {} and mine == {"MKL_CBWR": "AUTO"}
