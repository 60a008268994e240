"""How a training job starts its processes: torchrun on one machine, or srun + torchrun across the nodes of a
SLURM allocation (one torchrun per node, joined by a c10d rendezvous on the first node)."""

from __future__ import annotations

import os
import sys

import socket


class LaunchError(RuntimeError):
    pass


def world_size() -> int:
    """Processes of this training run (torchrun sets WORLD_SIZE; 1 outside it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def launch_command(nodes: int, nproc: int, threads: int, entry: list[str]) -> list[str]:
    """The command that runs ``python <entry>`` in ``nodes`` x ``nproc`` processes.

    On one node: ``torchrun --standalone``. On several: the job runs on the allocation's first node, inside
    ``sbatch --nodes N --ntasks N``; ``srun`` starts one torchrun per task, and the torchruns find each other
    through a c10d store this node hosts. The SLURM executor leaves the job only SLURM_JOB_ID of its
    allocation's variables, so the task count and CPUs are given to srun explicitly."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nodes == 1:
        return [*torchrun, "--standalone", *entry]
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        raise LaunchError(f"cpt.nodes is {nodes}: a multi-node run needs a SLURM allocation (run the workflow with "
                          "--profile profiles/slurm); on one machine set cpt.nodes: 1 and cpt.nproc")
    endpoint = f"{socket.gethostname()}:{free_port()}"
    return ["srun", f"--ntasks={nodes}", f"--cpus-per-task={max(1, threads)}", "--kill-on-bad-exit=1",
            *torchrun, f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
            f"--rdzv_id=deepen-{job}", *entry]


def die_with_launcher() -> None:
    """Make this training process end when its torchrun does. torchrun starts each process in a session of its
    own, so a launcher killed outright (SIGKILL: a job cancelled, a run stopped) would leave the processes
    training on, writing into a work directory the next run resumes from. Linux only (prctl); elsewhere a
    no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the launcher died before the request took hold
        os._exit(1)
