"""Where a stage computes, and in which precision: the one place that decides (``resources.device``). Stages ask
here and never test ``torch.cuda`` themselves.

``auto`` is the GPU the job was given (SLURM's allocation, or CUDA_VISIBLE_DEVICES on a workstation) when torch
sees one, else the CPU; ``cuda`` insists on a GPU; ``cpu`` never uses one. Evaluation (step-0 losses, seams,
lm-eval) runs in bf16 on a GPU and float32 on a CPU, where bf16 matrix products are slow and float32 keeps the
results the CPU runs always gave; the SVD's Gram matrix in float64 on a GPU, float32 on a CPU.
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def stage_device(requested: str = "auto"):
    """The torch device a stage computes on."""
    import torch

    if requested not in DEVICES:
        raise ValueError(f"resources.device: {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "cuda" and not gpu_available():
        raise RuntimeError("resources.device is cuda, but this job sees no GPU (CUDA_VISIBLE_DEVICES, or the job's "
                           "GPU request)")
    return torch.device("cuda" if requested == "cuda" or (requested == "auto" and gpu_available()) else "cpu")


def evaluation_dtype(device):
    """The dtype a model is evaluated in on ``device``: bf16 on a GPU, float32 on a CPU."""
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


def gram_in_float64(device) -> bool:
    """Whether the SVD accumulates its Gram matrix in float64 (a GPU: float64 products are cheap there, and give
    the CPU's float32 symmetric update's singular values within 1e-6 relative) or in float32 (the CPU route)."""
    return device.type != "cpu"


def device_problems(requested: str, gpus_per_job: int) -> list[str]:
    """The config check: ``cuda`` needs a GPU here, or jobs that request one (resources.gpus, on a cluster)."""
    if requested == "cuda" and gpus_per_job == 0 and not gpu_available():
        return ["resources.device: cuda, but this machine has no GPU and resources.gpus requests none for the jobs; "
                "use auto (the GPU where a job has one) or cpu"]
    return []
