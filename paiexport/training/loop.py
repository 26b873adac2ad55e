"""The training loop. It knows nothing about masks: methods act through callbacks."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import nn

from paiexport.config import StrictModel
from paiexport.data import DataSplits, Split
from paiexport.display import current
from paiexport.errors import UserError
from paiexport.seeding import stream
from paiexport.training import distributed
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.checkpoint import Progress, TrainSession
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.precision import Precision, PrecisionName, maybe_compile, prepare_input, prepare_model
from paiexport.training.trackers import Tracker


class OptimizerName(str, Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class ScheduleName(str, Enum):
    constant = "constant"
    step = "step"
    cosine = "cosine"


class CheckpointChoice(str, Enum):
    best = "best"  # highest validation accuracy
    last = "last"


class OptimizerConfig(StrictModel):
    name: OptimizerName = OptimizerName.sgd
    lr: float = Field(default=0.1, gt=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="sgd momentum; adam beta1")
    weight_decay: float = Field(default=0.0, ge=0.0)
    nesterov: bool = False


class LRScheduleConfig(StrictModel):
    name: ScheduleName = ScheduleName.cosine
    warmup_epochs: int = Field(default=0, ge=0)
    milestones: list[int] = Field(default_factory=list, description="epochs where `step` decays")
    gamma: float = Field(default=0.1, gt=0.0, description="decay factor of `step`")


class TrainConfig(StrictModel):
    epochs: int = Field(default=30, ge=0)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_schedule: LRScheduleConfig = Field(default_factory=LRScheduleConfig)
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    checkpoint: CheckpointChoice = CheckpointChoice.best
    checkpoint_every: int = Field(default=1, ge=1, description="epochs between resumable checkpoints")
    threads: int | str = Field(default="auto", description="torch CPU threads: auto or a count")
    log_to: list[Tracker] = Field(default_factory=list, max_length=2, description="tensorboard, mlflow")
    precision: PrecisionName = PrecisionName.fp32
    channels_last: bool = Field(default=False, description="channels_last memory format (conv2d nets)")
    compile: bool = Field(default=False, description="train a torch.compile'd model")

    @field_validator("threads", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> int | str:
        # Checked by hand: a plain union would accept `true` as 1 and name its members in errors.
        if value == "auto" and isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1024:
            return value
        raise ValueError(f"must be auto or a thread count from 1 to 1024, got {str(value)[:20]!r}")


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    exported_epoch: int = 0  # the epoch whose weights the model holds after `train`
    seconds: float = 0.0
    threads: int = 0  # torch CPU threads of the fit stage (set by the pipeline)


def make_optimizer(params: Any, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name is OptimizerName.sgd:
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov and cfg.momentum > 0,
        )
    cls = torch.optim.Adam if cfg.name is OptimizerName.adam else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)


def lr_factor(cfg: LRScheduleConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base LR at a step: linear warmup, then the schedule."""
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    if cfg.name is ScheduleName.constant:
        return 1.0
    if cfg.name is ScheduleName.step:
        epoch = step // max(steps_per_epoch, 1)
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    progress = (step - warmup) / max(total_steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, batch_size: int = 512, device: str = "cpu"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a split, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for x, y in split.batches(batch_size):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
    model.train(was_training)
    n = max(len(split), 1)
    return loss_sum / n, correct / n


def read_epoch_records(path: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of a metrics.jsonl written by `train`.

    Methods log other records to the same file (LTH levels, mask updates); those carry no
    training loss, so they are not epochs.
    """
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if "epoch" in row and "train_loss" in row]


def divergence_limit(first_loss: float) -> float:
    """Largest loss a healthy run reaches: 1000x its first step's loss, and at least 1e4.

    Cross-entropy starts near ln(classes) and a healthy run never gets far above it; Adam
    at lr 1e6 reached 5e17 without ever producing NaN.
    """
    return max(1e3 * first_loss, 1e4) if math.isfinite(first_loss) else math.inf


def check_divergence(loss: float, first_loss: float, epoch: int, step: int) -> None:
    """Stop on a non-finite or exploding loss, with one message for every optimizer and method."""
    if math.isfinite(loss) and loss <= divergence_limit(first_loss):
        return
    raise UserError(
        f"train: diverged at epoch {epoch + 1}, step {step}: loss {loss:.3g} (limit: finite and at most "
        f"{divergence_limit(first_loss):.3g}); "
        "lower train.optimizer.lr or raise train.lr_schedule.warmup_epochs"
    )


def train(
    model: nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    *,
    batch_size: int,
    seed: int,
    metrics_path: Path,
    checkpoint_dir: Path,
    callbacks: list[TrainCallback] = (),
    session: TrainSession | None = None,
) -> TrainResult:
    """Train with the configured optimizer and schedule; save best/last checkpoints.

    After the call the model holds the weights of `cfg.checkpoint` (best or last). With a
    `session`, the phase is checkpointed every `cfg.checkpoint_every` epochs and resumed.
    """
    device = distributed.local_device(cfg.device)
    model.to(device)
    # Scale-out hooks (training/precision.py, training/distributed.py): no-ops by default.
    net = distributed.wrap(maybe_compile(prepare_model(model, cfg.channels_last), cfg.compile), device)
    amp = Precision(cfg.precision, device)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer)
    steps_per_epoch = distributed.steps_per_epoch(len(data.train), batch_size)
    total = cfg.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(cfg.lr_schedule, s, steps_per_epoch, total)
    )
    state = TrainState(
        model,
        optimizer,
        nn.functional.cross_entropy,
        steps_per_epoch,
        total,
        (session.log if session else MetricsLog(metrics_path)).write,
    )
    generator = stream(seed, "batches")
    phase = session.begin(checkpoint_dir.name) if session else None
    for cb in callbacks:
        cb.on_train_begin(state)
    if phase is not None and phase.done:  # resumed: this phase had finished
        return phase.finish_restored(model, callbacks)
    progress, loop = (
        Progress(TrainResult(), time.perf_counter()),
        {"schedule": schedule, "generator": generator},
    )
    if phase is not None:
        phase.restore(state, loop, callbacks, progress)
    result, start = progress.result, progress.start
    # The run's live display (epoch bar, or one line per epoch); silent outside a run.
    with current().training(cfg.epochs, total) as display:
        for epoch in range(progress.first_epoch, cfg.epochs):
            state.epoch = epoch
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for x, y in distributed.shard(data.train.batches(batch_size, generator)):
                state.batch = (prepare_input(x.to(device), cfg.channels_last), y.to(device))
                for cb in callbacks:
                    cb.on_step_begin(state)
                optimizer.zero_grad(set_to_none=True)
                with amp.autocast():
                    logits = net(state.batch[0])
                    loss = state.loss_fn(logits, state.batch[1])
                amp.backward(loss)
                for cb in callbacks:
                    cb.on_after_backward(state)
                amp.step(optimizer)
                schedule.step()
                state.step += 1
                for cb in callbacks:
                    cb.on_step_end(state)
                loss_value = loss.item()
                if progress.first_loss is None:  # checkpointed: a resumed run keeps the same limit
                    progress.first_loss = loss_value
                check_divergence(loss_value, progress.first_loss, epoch, state.step)
                loss_sum += loss_value * len(y)
                correct += int((logits.argmax(1) == state.batch[1]).sum())
                seen += len(y)
                display.step()
            val_loss, val_acc = evaluate(model, data.val, device=device)
            record = {
                "epoch": epoch + 1, "step": state.step,
                "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                "val_loss": val_loss, "val_acc": val_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - start, 3),
            }  # fmt: skip
            for cb in callbacks:
                cb.on_epoch_end(state)
            state.log(record)
            result.history.append(record)
            torch.save(model.state_dict(), checkpoint_dir / "last.pt")
            if val_acc > progress.best_acc:
                progress.best_acc, result.best_epoch = val_acc, epoch + 1
                torch.save(model.state_dict(), checkpoint_dir / "best.pt")
            if phase is not None:
                phase.epoch_end(state, loop, callbacks, progress, cfg.epochs)
            display.epoch_done(record)
    for cb in callbacks:
        cb.on_train_end(state)
    if cfg.epochs == 0:
        torch.save(model.state_dict(), checkpoint_dir / "last.pt")
        torch.save(model.state_dict(), checkpoint_dir / "best.pt")
    best = cfg.checkpoint is CheckpointChoice.best
    model.load_state_dict(torch.load(checkpoint_dir / ("best.pt" if best else "last.pt"), weights_only=True))
    result.exported_epoch = result.best_epoch if best else cfg.epochs
    result.seconds = time.perf_counter() - start
    if phase is not None:
        phase.complete(model, callbacks, result)
    return result
