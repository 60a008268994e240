"""Training with ``transformers.Trainer``: base pretraining and continual pretraining (CPT).

Writes ``metrics.jsonl`` (one line per evaluation: step, tokens, train_loss, val_loss, lr, seconds),
checkpoints it resumes from after an interruption, and the final model directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deepen.core.atomic import atomic_dir
from deepen.core.disk import ensure_free
from deepen.models.families import attention_for
from deepen.train.launch import is_main_process, world_size
from deepen.train.metrics import read_metrics
from deepen.train.settings import TrainingSettings

FREEZE_POLICIES = ("new_only", "all")


class RandomWindows(Dataset):
    """``num_samples`` windows of ``seq_len`` tokens at seeded random offsets of a token stream (an array or a
    memmap of a token file: only the windows drawn are read, so memory does not grow with the corpus)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, num_samples: int, seed: int):
        if len(tokens) <= seq_len:
            raise ValueError(f"training split has {len(tokens)} tokens, fewer than seq_len {seq_len}")
        self.tokens = tokens
        rng = np.random.default_rng(seed)
        self.starts = rng.integers(0, len(tokens) - seq_len, size=num_samples)
        self.seq_len = seq_len

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        x = torch.from_numpy(self.tokens[self.starts[i] : self.starts[i] + self.seq_len].astype(np.int64))
        return {"input_ids": x, "labels": x}


class FixedWindows(Dataset):
    """Consecutive non-overlapping windows covering up to ``max_tokens`` of a split (the same for every run)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, max_tokens: int):
        n = min(len(tokens), max_tokens) // seq_len
        if n == 0:
            raise ValueError(f"validation split has {len(tokens)} tokens, fewer than seq_len {seq_len}")
        self.tokens = torch.from_numpy(tokens[: n * seq_len].astype(np.int64)).view(n, seq_len)

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        return {"input_ids": self.tokens[i], "labels": self.tokens[i]}


def fixed_slice_loss(model, val_tokens: np.ndarray, seq_len: int, max_tokens: int, batch_size: int) -> dict:
    """Mean val loss on the fixed slice training evaluates on (the same windows; what the Trainer reports as
    eval_loss before the first step), and the tokens it covers."""
    windows = FixedWindows(val_tokens, seq_len, max_tokens)
    was_training = model.training
    model.eval()
    total = 0.0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = windows.tokens[start : start + batch_size].to(device)
            total += model(input_ids=batch, labels=batch).loss.float().item() * len(batch)
    model.train(was_training)
    return {"val_loss": total / len(windows), "val_tokens": len(windows) * seq_len}


def window_losses(model, val_tokens: np.ndarray, seq_len: int, max_tokens: int, batch_size: int) -> list[float]:
    """Each window's mean loss on the fixed slice (their mean is ``fixed_slice_loss``'s): two models' losses on the
    same windows pair up, for an interval of their difference."""
    windows = FixedWindows(val_tokens, seq_len, max_tokens)
    was_training = model.training
    model.eval()
    out: list[float] = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = windows.tokens[start : start + batch_size].to(device)
            logits = model(input_ids=batch).logits[:, :-1].float()
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
            out += losses.mean(dim=1).tolist()
    model.train(was_training)
    return out


def micro_batches(batch: int, processes: int, micro_batch_size: int | None) -> tuple[int, int]:
    """(sequences per forward pass and process, accumulation steps) for a global batch of ``batch``."""
    if batch % processes:
        raise ValueError(f"batch_size {batch} is not divisible by the {processes} training processes")
    share = batch // processes
    micro = micro_batch_size or share
    if share % micro:
        raise ValueError(f"micro_batch_size {micro} does not divide the {share} sequences per process")
    return micro, share // micro


def cast_frozen_linears(model, dtype) -> int:
    """Hold the frozen linear layers' parameters in ``dtype``; return how many parameters were cast.

    Under autocast a linear layer multiplies in the autocast dtype whatever its weight's dtype, so a bf16
    copy of a frozen weight computes what the float32 one did, in half the memory. Embeddings (looked up,
    not multiplied) and weights shared with one stay float32."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    cast = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear) or id(module.weight) in embeddings:
            continue
        params = [p for p in module.parameters(recurse=False)]
        if params and not any(p.requires_grad for p in params):
            for p in params:
                p.data = p.data.to(dtype)
                cast += p.numel()
    return cast


def freeze(model, policy: str, trainable_layers: list[int] | None) -> int:
    """Set ``requires_grad`` by policy; return the number of trainable parameters."""
    if policy not in FREEZE_POLICIES:
        raise ValueError(f"unknown freeze policy {policy!r}; use one of {FREEZE_POLICIES}")
    if policy == "all":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        if not trainable_layers:
            raise ValueError("freeze policy 'new_only' but the plan has no new layers")
        for p in model.parameters():
            p.requires_grad_(False)
        layers = model.model.layers
        for i in trainable_layers:
            for p in layers[i].parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def config_digest(cfg: dict) -> str:
    """What a checkpoint was trained under; where the losses are reported (report_to) changes nothing in it."""
    computed = {k: v for k, v in cfg.items() if k != "report_to"}
    return hashlib.sha256(json.dumps(computed, sort_keys=True).encode()).hexdigest()[:16]


def plateau_reached(val_losses: list[float], window: int, min_rel_improvement: float) -> bool:
    """True when the best of the last ``window`` evaluations improves on the best before them by less
    than ``min_rel_improvement`` (relative): the loss has stopped going down."""
    if len(val_losses) <= window:
        return False
    before, recent = min(val_losses[:-window]), min(val_losses[-window:])
    return (before - recent) / abs(before) < min_rel_improvement


def _metrics_callback(path: Path, tokens_per_step: int, t0: float, plateau: dict | None = None):
    from transformers import TrainerCallback

    class MetricsWriter(TrainerCallback):
        """Joins the latest train loss and lr with each evaluation into one json line; with ``plateau``
        set, stops training once the val loss has plateaued."""

        def __init__(self):
            self.train_loss = None
            self.lr = None
            self.start = t0
            self.val_losses = [m["val_loss"] for m in read_metrics(path)] if path.exists() else []
            self.stopped_at = None

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.train_loss = float(logs["loss"])
            if logs and "learning_rate" in logs:
                self.lr = float(logs["learning_rate"])

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            line = {
                "step": state.global_step,
                "tokens": state.global_step * tokens_per_step,
                "train_loss": self.train_loss,
                "val_loss": float(metrics["eval_loss"]),
                "lr": self.lr,
                "seconds": round(time.time() - self.start, 3),
            }
            if state.is_world_process_zero:
                with open(path, "a") as f:
                    f.write(json.dumps(line) + "\n")
            self.val_losses.append(line["val_loss"])
            if plateau and state.global_step < args.max_steps and plateau_reached(
                    self.val_losses, plateau["window"], plateau["min_rel_improvement"]):
                self.stopped_at = state.global_step
                control.should_training_stop = True

    return MetricsWriter()


def _checkpoint_callback(ckpt_dir: Path, checkpoint_bytes: int, keep_last: bool):
    from transformers import TrainerCallback

    class CheckpointPolicy(TrainerCallback):
        """No checkpoint at the last step unless checkpoints are kept (the Trainer saves one there under a "steps"
        strategy; the final model is written apart and the checkpoints deleted); before a step that saves one,
        check there is room for it."""

        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= state.max_steps and not keep_last:
                control.should_save = False
            if control.should_save:
                ensure_free(ckpt_dir, checkpoint_bytes, f"checkpoint at step {state.global_step}")

    return CheckpointPolicy()


def checkpoint_nbytes(model) -> int:
    """A checkpoint's size: the weights, plus AdamW's two float32 moments for every trainable parameter."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return weights + sum(2 * 4 * p.numel() for p in model.parameters() if p.requires_grad)


def checkpoint_complete(processes: int) -> tuple[str, ...]:
    """The files the Trainer writes last when it saves, so a checkpoint directory without them was cut short: the
    state, and each process's random state (one file when there is one process)."""
    rng = ["rng_state.pth"] if processes == 1 else [f"rng_state_{rank}.pth" for rank in range(processes)]
    return ("trainer_state.json", *rng)


PARTIAL_METRICS = "metrics.partial.jsonl"


def prepare_run(cfg: dict, work_dir, processes: int = 1) -> None:
    """Before training starts: drop checkpoints of other settings, and metric lines a resume will redo.

    Lines accumulate in metrics.partial.jsonl, renamed to metrics.jsonl once the final model is saved: a
    run cut short leaves no metrics.jsonl that looks finished, and its partial file is what a resume
    continues."""
    work_dir = Path(work_dir)
    ckpt_dir, partial_path = work_dir / "checkpoints", work_dir / PARTIAL_METRICS
    (work_dir / "metrics.jsonl").unlink(missing_ok=True)
    digest = config_digest(cfg)
    stamp = ckpt_dir / "config_digest"
    if ckpt_dir.exists() and (not stamp.exists() or stamp.read_text() != digest):
        shutil.rmtree(ckpt_dir)  # checkpoints of other settings must not be resumed
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    resume = _last_checkpoint(ckpt_dir, processes)
    if resume is not None and partial_path.exists():
        done = int(resume.name.split("-")[1])
        lines = [m for m in read_metrics(partial_path) if m["step"] <= done]
        partial_path.write_text("".join(json.dumps(m) + "\n" for m in lines))
    else:
        partial_path.unlink(missing_ok=True)


def _last_checkpoint(ckpt_dir: Path, processes: int) -> Path | None:
    complete = checkpoint_complete(processes)
    ckpts = [p for p in ckpt_dir.glob("checkpoint-*") if all((p / f).exists() for f in complete)]
    ckpts.sort(key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def _checkpointing_args(arguments_class, enabled: bool) -> dict:
    """Activation checkpointing under the name this transformers uses (gradient_* before 5.x renamed it);
    non-reentrant, since frozen layers below the trainable ones pass on no input that requires grad."""
    name = ("activation_checkpointing" if "activation_checkpointing" in arguments_class.__dataclass_fields__
            else "gradient_checkpointing")
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False}}


def _fsdp_args(checkpointing: bool) -> dict:
    """Fully sharded data parallel through the Trainer: parameters, gradients and optimizer state sharded over
    the processes, each decoder layer one unit (the model's ``_no_split_modules``), saved whole."""
    return {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True,
                                          "state_dict_type": "FULL_STATE_DICT",
                                          "activation_checkpointing": checkpointing}}


def _sharding_on_cpu(trainer_class):
    """The Trainer, with its FSDP also on CPU processes (gloo). accelerate shards on accelerators only and on a CPU
    would run plain DDP unannounced; FSDP2 itself shards CPU tensors, so the state is set as on a GPU."""

    class Trainer(trainer_class):
        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            state = self.accelerator.state
            if self.args.fsdp_plugin_args is None or getattr(state, "fsdp_plugin", None) is not None:
                return
            from accelerate import PartialState
            from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

            if state.distributed_type != DistributedType.MULTI_CPU:  # one process: train() refuses it first
                raise ValueError(f"FSDP with accelerate's {state.distributed_type}: not offered")
            plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
            if state.mixed_precision != "no":
                plugin.set_mixed_precision(state.mixed_precision)
            state.distributed_type, state.fsdp_plugin = DistributedType.FSDP, plugin
            # every later AcceleratorState() copies the distributed type from the PartialState: set there too
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.is_fsdp_enabled = True

    return Trainer


def watch_callbacks(report_to: str, work_dir: Path) -> tuple[str, list]:
    """(the Trainer's ``report_to``, callbacks) that send the losses where ``report_to`` says, into the run's folder:
    TensorBoard's event files in tensorboard/, W&B's run in wandb/, offline unless the user is logged in."""
    if report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        return "none", [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(work_dir / "tensorboard")))]
    if report_to == "wandb":
        os.environ["WANDB_DIR"] = str(work_dir)
        netrc = Path.home() / ".netrc"
        logged_in = bool(os.environ.get("WANDB_API_KEY")) or (
            netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"))
        if not logged_in:
            os.environ.setdefault("WANDB_MODE", "offline")
    return report_to, []


def train(model, tokenizer, train_tokens, val_tokens, cfg: dict | TrainingSettings, work_dir, final_dir,
          trainable_layers: list[int] | None = None, threads: int = 1, continue_from=None) -> dict:
    """Train ``model`` for ``cfg.steps`` optimizer steps; resume from ``work_dir`` checkpoints if any, else from the
    checkpoint ``continue_from`` (another run's, whose steps this one continues: its weights, optimizer, schedule and
    data position). ``train_tokens``/``val_tokens``: token streams cut into windows, or Datasets of encoded
    examples. ``cfg``: the run's settings (deepen/train/settings.py), or a config section to build them from.
    ``final_dir`` None: no final model is written (the kept checkpoints hold it)."""
    from transformers import Trainer

    settings = cfg if isinstance(cfg, TrainingSettings) else TrainingSettings.from_config(cfg)
    torch.set_num_threads(max(1, threads))
    work_dir, final_dir = Path(work_dir), (Path(final_dir) if final_dir is not None else None)
    ckpt_dir = work_dir / "checkpoints"
    world = world_size()
    settings.check(world, torch.cuda.is_available())
    if world == 1:
        prepare_run(settings.as_dict(), work_dir)  # a multi-process run was prepared by its launcher, once
    main = is_main_process()

    trainable = freeze(model, settings.freeze, trainable_layers)
    micro, accumulation = micro_batches(settings.batch_size, world, settings.micro_batch_size)
    if settings.frozen_dtype == "bfloat16":
        cast_frozen_linears(model, torch.bfloat16)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(attention_for(type(model), settings.attn_implementation))
    train_set, val_set = _datasets(train_tokens, val_tokens, settings)
    resume = _last_checkpoint(ckpt_dir, world)
    if resume is None and continue_from is not None and main:
        step = json.loads((Path(continue_from) / "trainer_state.json").read_text())["global_step"]
        resume = ckpt_dir / f"checkpoint-{step}"
        shutil.copytree(continue_from, resume)
    reporter, watchers = watch_callbacks(settings.report_to, work_dir) if main else ("none", [])
    args = _training_arguments(settings, ckpt_dir, micro, accumulation, world, reporter, first_run=resume is None)
    t0 = time.time()
    callback = _metrics_callback(work_dir / PARTIAL_METRICS, settings.batch_size * settings.seq_len, t0,
                                 settings.plateau)
    space = _checkpoint_callback(ckpt_dir, checkpoint_nbytes(model), settings.keep_checkpoints)
    trainer = _sharding_on_cpu(Trainer)(model=model, args=args, train_dataset=train_set, eval_dataset=val_set,
                                        callbacks=[callback, space, *watchers])
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if callback.stopped_at is None and settings.steps % settings.eval_interval:
        trainer.evaluate()
    elapsed = time.time() - t0
    sharded = _save_final(trainer, model, tokenizer, settings, work_dir, final_dir, main)
    return {"trainable_params": trainable, "seconds": elapsed, "steps": callback.stopped_at or settings.steps,
            "max_steps": settings.steps, "resumed_from_step": int(resume.name.split("-")[1]) if resume else 0,
            "stopped_on_plateau": callback.stopped_at is not None, "val_tokens": len(val_set) * settings.seq_len,
            "strategy": settings.strategy, "sharded_parameters": sharded, "micro_batch_size": micro,
            "accumulation_steps": accumulation}


def _datasets(train_tokens, val_tokens, settings: TrainingSettings) -> tuple[Dataset, Dataset]:
    """Random training windows and the fixed val slice of token streams; encoded examples (SFT) as they are."""
    if isinstance(train_tokens, Dataset):
        return train_tokens, val_tokens
    windows = (settings.window_steps or settings.steps) * settings.batch_size
    return (RandomWindows(train_tokens, settings.seq_len, windows, settings.seed),
            FixedWindows(val_tokens, settings.seq_len, settings.eval_tokens))


def _training_arguments(settings: TrainingSettings, ckpt_dir: Path, micro: int, accumulation: int, world: int,
                        reporter: str, first_run: bool):
    from transformers import TrainingArguments

    fsdp = settings.strategy == "fsdp"
    return TrainingArguments(
        output_dir=str(ckpt_dir),
        max_steps=settings.steps,
        # batch_size is the global batch: each process takes its share, in micro batches
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        # under FSDP, FSDP checkpoints activations itself (the Trainer's own would all-gather twice)
        **_checkpointing_args(TrainingArguments, settings.gradient_checkpointing and not fsdp),
        **(_fsdp_args(settings.gradient_checkpointing) if fsdp else {}),
        per_device_eval_batch_size=micro,
        ddp_backend=("nccl" if torch.cuda.is_available() else "gloo") if world > 1 else None,
        learning_rate=settings.lr,
        lr_scheduler_type=settings.schedule,
        **({"lr_scheduler_kwargs": _stable_decay(settings)} if settings.schedule == "warmup_stable_decay" else {}),
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.grad_clip,
        logging_steps=settings.eval_interval,
        eval_strategy="steps",
        # the val loss at step 0, before any update, on the model as prepared for training (FSDP2 cannot prepare a
        # model for evaluation alone)
        eval_on_start=first_run,
        eval_steps=settings.eval_interval,
        save_strategy="steps",
        save_steps=settings.checkpoint_interval,
        save_total_limit=1,
        prediction_loss_only=True,
        report_to=reporter,
        use_cpu=not torch.cuda.is_available(),
        **({"train_sampling_strategy": "sequential"} if settings.windows_in_order else {}),
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        seed=settings.seed,
        data_seed=settings.seed,
        # mixed precision: float32 trainable weights, 16-bit matrix products
        bf16=settings.precision == "bf16",
        fp16=settings.precision == "fp16",
        disable_tqdm=False,
        save_only_model=False,
    )


def _stable_decay(settings: TrainingSettings) -> dict:
    """The warmup-stable-decay schedule's steps: warmup, constant until decay_start, then linear to 0."""
    start = settings.steps - settings.decay_steps if settings.decay_start is None else settings.decay_start
    return {"num_stable_steps": start - settings.warmup_steps, "num_decay_steps": settings.decay_steps,
            "decay_type": "linear"}


def _save_final(trainer, model, tokenizer, settings: TrainingSettings, work_dir: Path, final_dir: Path | None,
                main: bool) -> int:
    """The trained model into ``final_dir`` and metrics.partial.jsonl to metrics.jsonl (the main process); returns how
    many parameters were sharded (FSDP2 DTensors)."""
    from torch.distributed.tensor import DTensor

    # Under FSDP each process holds a shard: gathering the whole state dict takes every process; then, as under
    # DDP where every process holds the same model, one writes it.
    fsdp = settings.strategy == "fsdp"
    state_dict = trainer.accelerator.get_state_dict(trainer.model) if fsdp else None
    sharded = sum(isinstance(p, DTensor) for p in trainer.model.parameters())
    if main:
        if final_dir is not None:
            ensure_free(final_dir.parent, checkpoint_nbytes(model), f"final model {final_dir}")
            with atomic_dir(final_dir) as tmp:
                trainer.accelerator.unwrap_model(trainer.model).save_pretrained(str(tmp), state_dict=state_dict)
                if tokenizer is not None:  # None where the data came as token ids (benchmarks/smollm2_gpu.py)
                    tokenizer.save_pretrained(str(tmp))
        os.replace(work_dir / PARTIAL_METRICS, work_dir / "metrics.jsonl")
        if not settings.keep_checkpoints:
            shutil.rmtree(work_dir / "checkpoints")
    return sharded
