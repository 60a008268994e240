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


# The vector instructions an x86 CPU's float32 kernels use, pinned for every job of the workflow: MKL (matrix
# products), torch's own kernels and oneDNN each pick the widest path the CPU has unless told, and two paths round
# differently. Most stages shrug that off; LESA's predictor does not (benchmarks/predictor_reproducibility.py: on one
# machine, another path moves its weights by up to 0.1 and the layer it generates by 22%). AVX2 is what every x86 CPU
# of the last decade has; a user's own setting of any of these wins.
CPU_VECTOR_PATH = {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_cpu_vector_path(environ=None, cpuinfo: str | None = None) -> dict[str, str]:
    """Set :data:`CPU_VECTOR_PATH` in ``environ`` (default: this process's, which the jobs inherit) where the CPU has
    AVX2 and the user set none of them; returns what it set. Read by each process at start-up: call it before torch
    is imported in the processes that compute."""
    import os
    import platform

    environ = os.environ if environ is None else environ
    if cpuinfo is None:
        if platform.machine() not in ("x86_64", "AMD64"):
            return {}
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return {}
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    if "avx2" not in flags or any(k in environ for k in CPU_VECTOR_PATH):
        return {}
    environ.update(CPU_VECTOR_PATH)
    return dict(CPU_VECTOR_PATH)
