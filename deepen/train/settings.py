"""A training run's settings, typed and complete: built once from a config section (the schema's defaults under what
the section sets), checked once by the same rules in the config check (before any job) and in the trainer (for code
run without the workflow)."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, fields

from deepen.core.schema import training_defaults

@dataclass(frozen=True)
class TrainingSettings:
    """config/schema.yaml says what each does."""

    steps: int
    batch_size: int
    seq_len: int
    lr: float
    eval_interval: int
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    schedule: str
    precision: str
    frozen_dtype: str
    micro_batch_size: int | None
    gradient_checkpointing: bool
    attn_implementation: str
    eval_tokens: int
    checkpoint_interval: int
    keep_checkpoints: bool
    report_to: str
    plateau: dict | None
    strategy: str
    nproc: int = 1
    nodes: int = 1
    seed: int = 0
    freeze: str = "all"
    # the steps the training windows are drawn for (default: steps): runs that continue one another (a race's rungs)
    # draw them for the longest, so that each sees the windows an uninterrupted run would
    window_steps: int | None = None
    # True: the windows in the order they were drawn (at random offsets already) rather than shuffled by the Trainer's
    # global random state, so that a run continued from a checkpoint takes the batches the uninterrupted run would
    windows_in_order: bool = False
    # schedule warmup_stable_decay: the steps over which the rate decays linearly to 0, from step decay_start (default:
    # steps - decay_steps); a decay_start past ``steps`` keeps the rate constant to the end, and a run that continues
    # this one's checkpoint takes its next step at that rate
    decay_steps: int = 0
    decay_start: int | None = None

    @classmethod
    def from_config(cls, section: dict) -> TrainingSettings:
        """``section`` (a config's training section, or one run's: with its seed and freeze policy) over the schema's
        defaults; keys that are not training settings (a section's seed count) are left out."""
        merged = {**training_defaults(), **section}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in merged.items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)

    def findings(self, processes: int = 1, gpu: bool = True) -> list[tuple[str, str]]:
        """(key, what is wrong) of what the schema cannot say of these settings over ``processes`` training
        processes, where the jobs have a GPU or not (``gpu``)."""
        out = batch_findings(self.batch_size, processes, self.micro_batch_size)
        if self.strategy == "fsdp" and processes == 1:
            out.append(("strategy", "fsdp shards over several processes, and this run has one (nproc × nodes = 1); "
                                    "use ddp, or nproc 2 or more"))
        if self.report_to != "none" and importlib.util.find_spec(self.report_to) is None:
            out.append(("report_to", f"{self.report_to} is not installed here (pip install {self.report_to})"))
        if self.frozen_dtype == "bfloat16" and self.precision != "bf16":
            out.append(("frozen_dtype",
                        f"bfloat16 frozen parameters need precision bf16 (autocast), not {self.precision}"))
        if self.precision == "fp16" and not gpu:
            out.append(("precision", "fp16 needs a GPU (its loss scaling is CUDA's) and the jobs have none; use bf16 "
                                     "on a CPU"))
        return out

    def problems(self, section: str, processes: int = 1, gpu: bool = True) -> list[str]:
        """The findings as the config check reports them: ``section.key: what``."""
        return [f"{section}.{key}: {what}" for key, what in self.findings(processes, gpu)]

    def check(self, processes: int, gpu: bool) -> None:
        """Raise ValueError with every finding: for a run started without the workflow's config check."""
        found = self.findings(processes, gpu)
        if found:
            raise ValueError("; ".join(f"{key} {what}" for key, what in found))


def batch_findings(batch: int, processes: int, micro: int | None) -> list[tuple[str, str]]:
    """A global batch must divide over the processes, and each process's share over the micro batches."""
    if batch % processes:
        return [("batch_size", f"{batch} is the global batch and must divide evenly over {processes} processes")]
    if micro is not None and (batch // processes) % micro:
        return [("micro_batch_size", f"{micro} does not divide the {batch // processes} sequences each of {processes} "
                                     f"processes takes per step (batch_size {batch})")]
    return []
