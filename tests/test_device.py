"""One module decides where a stage computes (resources.device): on the CPU every stage gives, with the device and
dtype named explicitly, exactly what it gave before; a GPU that is not there is refused."""

import json

import pytest
import torch
import yaml

from deepen.device import device_problems, evaluation_dtype, stage_device
from deepen.pipeline import init_loss_stage, seams_stage

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
