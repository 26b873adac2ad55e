"""The training loop. It knows nothing about masks: methods act through callbacks."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paiexport.data import DataSplits, Split
from paiexport.display import current
from paiexport.errors import UserError
from paiexport.inputs import Inputs, call_model, to_device
from paiexport.paths import PhaseCheckpoints
from paiexport.seeding import stream
from paiexport.tasks import Meter, Task, make_task
from paiexport.training import distributed, stop
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.checkpoint import Progress, TrainSession
from paiexport.training.config import (
    CheckpointChoice,
    LRScheduleConfig,
    OptimizerConfig,
    OptimizerName,
    ScheduleName,
    TrainConfig,
)
from paiexport.training.lr_piecewise import PiecewiseLR, piecewise_trace, weight_decay_trace
from paiexport.training.metrics_log import EpochRecord, MetricsLog
from paiexport.training.precision import Precision, maybe_compile, prepare_input, prepare_model
from paiexport.training.result import TrainResult


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


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, total: int
) -> Any:
    """LambdaLR for the factor schedules; `piecewise` replays absolute LRs and weight decay."""
    if cfg.lr_schedule.name is ScheduleName.piecewise:
        base = cfg.optimizer.lr
        trace = piecewise_trace(cfg.lr_schedule.segments, base, total, max(steps_per_epoch, 1))
        decay = weight_decay_trace(cfg.weight_decay_schedule, total, max(steps_per_epoch, 1))
        return PiecewiseLR(optimizer, trace, decay)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(cfg.lr_schedule, s, steps_per_epoch, total)
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, batch_size: int = 512, device: str = "cpu", task: Task | None = None
) -> tuple[float, dict[str, float]]:
    """Mean loss and every metric of `task` (classification when None) on a split, in eval mode."""
    task = task or make_task()
    was_training = model.training
    model.eval()
    loss_sum, meter = 0.0, task.meter()
    for x, y in split.batches(batch_size):
        x, y = to_device(x, device), y.to(device)
        outputs = task.pick(call_model(model, x))
        loss_sum += float(task.loss(outputs, y)) * len(y)
        meter.add(outputs.detach().cpu(), y.cpu())
    model.train(was_training)
    return loss_sum / max(len(split), 1), meter.result()


def primary(task: Task, metrics: dict[str, float]) -> float:
    return metrics[task.primary]


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


@dataclass
class _Loop:
    """What one training phase works with; built once by `_start`."""

    cfg: TrainConfig
    data: DataSplits
    batch_size: int
    device: Any
    net: nn.Module
    amp: Precision
    state: TrainState
    schedule: Any
    generator: torch.Generator
    callbacks: list[TrainCallback]
    checkpoints: PhaseCheckpoints


def _start(
    model: nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    batch_size: int,
    seed: int,
    log: MetricsLog,
    checkpoints: PhaseCheckpoints,
    callbacks: list[TrainCallback],
) -> _Loop:
    device = distributed.local_device(cfg.device)
    model.to(device)
    # Scale-out hooks (training/precision.py, training/distributed.py): no-ops by default.
    net = distributed.wrap(maybe_compile(prepare_model(model, cfg.channels_last), cfg.compile), device)
    amp = Precision(cfg.precision, device)
    checkpoints.folder.mkdir(parents=True, exist_ok=True)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer)
    steps_per_epoch = distributed.steps_per_epoch(len(data.train), batch_size)
    total = cfg.epochs * steps_per_epoch
    schedule = make_scheduler(optimizer, cfg, steps_per_epoch, total)
    state = TrainState(model, optimizer, data.task.loss, steps_per_epoch, total, log.write)
    batches = stream(seed, "batches")
    return _Loop(
        cfg, data, batch_size, device, net, amp, state, schedule, batches, list(callbacks), checkpoints
    )


def _step(loop: _Loop, x: Inputs, y: torch.Tensor, progress: Progress, meter: Meter) -> float:
    """One optimizer step with every callback hook; returns the batch loss (the meter sees the outputs)."""
    state, callbacks = loop.state, loop.callbacks
    state.batch = (prepare_input(to_device(x, loop.device), loop.cfg.channels_last), y.to(loop.device))
    for cb in callbacks:
        cb.on_step_begin(state)
    state.optimizer.zero_grad(set_to_none=True)
    with loop.amp.autocast():
        outputs = loop.data.task.pick(call_model(loop.net, state.batch[0]))
        loss = state.loss_fn(outputs, state.batch[1])
    loop.amp.backward(loss)
    for cb in callbacks:
        cb.on_after_backward(state)
    loop.amp.step(state.optimizer)
    loop.schedule.step()
    state.step += 1
    for cb in callbacks:
        cb.on_step_end(state)
    loss_value = loss.item()
    if progress.first_loss is None:  # checkpointed: a resumed run keeps the same limit
        progress.first_loss = loss_value
    check_divergence(loss_value, progress.first_loss, state.epoch, state.step)
    meter.add(outputs.detach().float().cpu(), state.batch[1].cpu())
    return loss_value


def _epoch(loop: _Loop, epoch: int, progress: Progress, display: Any) -> EpochRecord:
    """Train one epoch, validate, and return its metrics.jsonl record."""
    state, task = loop.state, loop.data.task
    state.epoch = epoch
    state.model.train()
    loss_sum, seen, meter = 0.0, 0, task.meter()
    for x, y in distributed.shard(loop.data.train.batches(loop.batch_size, loop.generator)):
        loss_sum += _step(loop, x, y, progress, meter) * len(y)
        seen += len(y)
        display.step()
    val_loss, val_metrics = evaluate(state.model, loop.data.val, device=loop.device, task=task)
    return EpochRecord(
        epoch=epoch + 1,
        step=state.step,
        train_loss=loss_sum / max(seen, 1),
        train_metric=primary(task, meter.result()),
        val_loss=val_loss,
        val_metric=primary(task, val_metrics),
        lr=state.optimizer.param_groups[0]["lr"],
        seconds=round(time.perf_counter() - progress.start, 3),
        metric=task.short,
    )


def _keep_epoch(loop: _Loop, record: EpochRecord, progress: Progress) -> None:
    """Callbacks, the metrics line and the last/best checkpoints of a finished epoch."""
    model, result = loop.state.model, progress.result
    for cb in loop.callbacks:
        cb.on_epoch_end(loop.state)
    loop.state.log(record)
    result.history.append(record)
    torch.save(model.state_dict(), loop.checkpoints.last)
    score = record.val_metric if loop.data.task.higher_is_better else -record.val_metric
    if score > progress.best_score:
        progress.best_score, result.best_epoch = score, record.epoch
        torch.save(model.state_dict(), loop.checkpoints.best)


def _finish(loop: _Loop, progress: Progress) -> TrainResult:
    """End hooks; the model takes the weights of `cfg.checkpoint` (best or last)."""
    cfg, model, result = loop.cfg, loop.state.model, progress.result
    for cb in loop.callbacks:
        cb.on_train_end(loop.state)
    if cfg.epochs == 0:
        torch.save(model.state_dict(), loop.checkpoints.last)
        torch.save(model.state_dict(), loop.checkpoints.best)
    best = cfg.checkpoint is CheckpointChoice.best
    chosen = loop.checkpoints.chosen(best)
    model.load_state_dict(torch.load(chosen, weights_only=True))
    result.exported_epoch = result.best_epoch if best else cfg.epochs
    result.seconds = time.perf_counter() - progress.start
    return result


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
    log = session.log if session else MetricsLog(metrics_path)
    checkpoints = PhaseCheckpoints(checkpoint_dir)
    loop = _start(model, data, cfg, batch_size, seed, log, checkpoints, callbacks)
    phase = session.begin(checkpoint_dir.name) if session else None
    for cb in loop.callbacks:
        cb.on_train_begin(loop.state)
    if phase is not None and phase.done:  # resumed: this phase had finished
        return phase.finish_restored(model, loop.callbacks)
    progress = Progress(TrainResult(), time.perf_counter())
    saved = {"schedule": loop.schedule, "generator": loop.generator}
    if phase is not None:
        phase.restore(loop.state, saved, loop.callbacks, progress)
    # The run's live display (epoch bar, or one line per epoch); silent outside a run.
    with current().training(cfg.epochs, loop.state.total_steps) as display:
        for epoch in range(progress.first_epoch, cfg.epochs):
            with stop.epoch():  # a signal here waits for the epoch's checkpoint
                record = _epoch(loop, epoch, progress, display)
                _keep_epoch(loop, record, progress)
                if phase is not None:
                    phase.epoch_end(loop.state, saved, loop.callbacks, progress, cfg.epochs)
            display.epoch_done(record.to_dict(), loop.data.task.percent)  # display is a leaf: plain data
    result = _finish(loop, progress)
    if phase is not None:
        phase.complete(model, loop.callbacks, result)
    return result
