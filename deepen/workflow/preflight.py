"""Before a run: what each stage of a config will cost on the user's machines — time, memory against the GPU memory
given, and the disk the run holds — from the stage cost model (deepen/workflow/stage_costs.py) and the job table's
requests, with no tensor touched. ``deepen costs`` prints it."""

from __future__ import annotations

from dataclasses import dataclass

from deepen.workflow.jobs import JobTable
from deepen.workflow.stage_costs import INTERPRETER_BYTES

GB = 1e9


@dataclass(frozen=True)
class StageLine:
    stage: str
    jobs: int
    estimate_seconds: float  # one job, at the rates resources gives (FLOP/s per process, disk bytes/s)
    minutes_per_job: int  # the run-time request: the estimate times resources.runtime_safety, startup included
    host_mb: int  # the memory request of one job
    gpu_gb: float | None  # peak tensor memory of one process on a GPU; None: the stage computes on the CPU
    disk_gb: float  # what its jobs write, in all
    problem: str = ""


def stage_lines(table: JobTable, gpu_memory_gb: float | None = None) -> list[StageLine]:
    """One line per tensor stage the config runs (jobs > 0)."""
    res, cpt = table.res, table.config["cpt"]
    out = []
    for stage, cost in table.stage_costs.items():
        if not cost.jobs:
            continue
        request = table.resources(stage)
        # a CPT run computes on cpt.nodes x cpt.nproc processes; FSDP divides its training state among them
        processes = cpt["nodes"] * cpt["nproc"] if stage == "continual_pretrain" else 1
        sharded = processes if stage == "continual_pretrain" and cpt["strategy"] == "fsdp" else 1
        on_gpu = res["gpus"] > 0 and cost.accelerated and table.device != "cpu"
        gpu_gb = cost.peak_bytes / sharded / GB if on_gpu else None
        problem = ""
        if gpu_memory_gb is not None and gpu_gb is not None and gpu_gb > gpu_memory_gb:
            problem = (f"needs {gpu_gb:.1f} GB of GPU memory per process, {gpu_memory_gb:g} GB given: more GPUs per "
                       "job (cpt.nproc with strategy fsdp), gradient checkpointing or a smaller micro batch")
        seconds = cost.seconds(res["train_flops_per_second"] * processes, res["io_bytes_per_second"])
        out.append(StageLine(stage, cost.jobs, seconds, request["runtime"], request["mem_mb"], gpu_gb,
                             cost.bytes_written * cost.jobs / GB, problem))
    return out


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def cost_table(config: dict, gpu_memory_gb: float | None = None) -> tuple[str, bool]:
    """The table as text, and whether every stage fits the memory given. ``config``: checked (defaults filled);
    resources.gpus and resources.train_flops_per_second as the user's machines have them."""
    from deepen.workflow.expansion import workflow_dir

    table = JobTable(config, str(workflow_dir()))
    lines = stage_lines(table, gpu_memory_gb)
    res = table.res
    head = (f"{table.family.hf_class} of {table.base_config['num_hidden_layers']} layers "
            f"({table.base_params / 1e9:.2f} B parameters); {res['gpus']} GPU(s) per job at "
            f"{res['train_flops_per_second']:.3g} FLOP/s, disk at {res['io_bytes_per_second']:.3g} B/s, "
            f"run times x{res['runtime_safety']:g} as requested")
    rows = [("stage", "jobs", "estimate/job", "all jobs", "requested min/job", "host GB/job", "GPU GB/process",
             "disk GB", "")]
    for line in lines:
        rows.append((line.stage, str(line.jobs), _duration(line.estimate_seconds),
                     _duration(line.jobs * line.estimate_seconds), str(line.minutes_per_job),
                     f"{line.host_mb / 1024:.1f}",
                     "-" if line.gpu_gb is None else f"{line.gpu_gb:.1f}", f"{line.disk_gb:.2f}",
                     "WILL NOT FIT" if line.problem else ""))
    total = sum(line.jobs * line.estimate_seconds for line in lines)
    disk = sum(line.disk_gb for line in lines)
    rows.append(("all", str(sum(line.jobs for line in lines)), "", _duration(total), "", "", "", f"{disk:.2f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    text = [head, ""] + ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
                                   ).rstrip() for r in rows]
    text += ["", "all jobs: one after another (jobs side by side divide it); requested: the estimate times "
                 f"resources.runtime_safety with startup, what a job asks SLURM for; host memory includes the "
                 f"interpreter (~{INTERPRETER_BYTES / GB:.1f} GB); GPU memory: one process's peak, float32, the "
                 "training state divided among a CPT run's processes under FSDP"]
    problems = [f"{line.stage}: {line.problem}" for line in lines if line.problem]
    text += [f"will not fit — {p}" for p in problems]
    if gpu_memory_gb is None:
        text.append("(give --gpu-memory GB to check each stage against your GPUs)")
    return "\n".join(text), not problems

