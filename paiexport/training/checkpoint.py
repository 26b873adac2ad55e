"""Crash-safe training: one resume file per run (`checkpoints/resume.pt`), written atomically.

A run's training is a sequence of trainer calls, its *phases* (LTH levels, the dense and
fine-tune phases of magnitude_after_training, or one phase). The file holds every finished
phase (the model it left, its callbacks' `state_dict()`, its result, the RNG streams and the
metrics position) and the last checkpoint of the phase in progress (also the optimizer, LR
schedule, batch-order generator, best accuracy and elapsed time). Resuming runs the method's
`fit` again from the start: a finished phase is restored instead of trained, the code between
phases runs again on the restored state (it is deterministic), and the phase in progress
continues from its checkpoint. So methods need no special cases, only callbacks that
`state_dict()` what they carry across steps.
"""

from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.stop import raise_if_stopped, stop_requested

if TYPE_CHECKING:
    from paiexport.training.loop import TrainResult

FORMAT = 1


def atomic_save(obj: Any, path: Path) -> None:
    """Temporary file, fsync, rename: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


def rng_state() -> dict[str, Any]:
    """Every global RNG stream (paiexport's derived streams are generators saved by their owners)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Progress:
    """The loop's counters that a checkpoint carries."""

    result: TrainResult
    start: float  # perf_counter origin of the phase's elapsed time
    best_acc: float = -1.0
    first_epoch: int = 0
    first_loss: float | None = None  # the divergence limit's reference (first step's loss)


class TrainSession:
    """A run's training across its phases: writes the resume file, restores from it."""

    def __init__(self, path: Path, log: MetricsLog, every: int = 1) -> None:
        self.path, self.log, self.every = path, log, every
        self.finished: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.calls = 0

    @classmethod
    def resume(cls, path: Path, log: MetricsLog, every: int = 1) -> TrainSession:
        session = cls(path, log, every)
        saved = torch.load(path, weights_only=False)
        if saved.get("format") != FORMAT:
            raise UserError(f"--resume: {path} was written by another paiexport version")
        session.finished, session.current = saved["finished"], saved["current"]
        last = session.current or (session.finished[-1] if session.finished else None)
        log.resume(last["log_pos"] if last else 0)
        return session

    def describe(self) -> str:
        """Where the saved training stands, for the resume message."""
        if self.current is not None:
            return f"phase {len(self.finished) + 1}, epoch {self.current['epoch']}"
        return f"{len(self.finished)} training phase(s) finished"

    def begin(self, tag: str) -> Phase:
        index, key = self.calls, f"{self.calls}:{tag}"
        self.calls += 1
        saved = self.finished[index] if index < len(self.finished) else None
        if saved is None and index == len(self.finished):
            saved = self.current
        if saved is not None and saved["key"] != key:
            raise UserError(
                f"--resume: the saved training has phase {saved['key']!r} where this one has {key!r}"
            )
        return Phase(self, key, saved, done=index < len(self.finished))

    def write(self) -> None:
        atomic_save({"format": FORMAT, "finished": self.finished, "current": self.current}, self.path)


@dataclass
class Phase:
    """One trainer call: restored whole (done), continued from a checkpoint, or trained afresh."""

    session: TrainSession
    key: str
    saved: dict[str, Any] | None
    done: bool

    def finish_restored(self, model: nn.Module, callbacks: list[TrainCallback]) -> TrainResult:
        """A finished phase: leave the model, callbacks, RNGs and metrics position as it did."""
        model.load_state_dict(self.saved["model"])
        for cb, state in zip(callbacks, self.saved["callbacks"], strict=True):
            cb.load_state_dict(copy.deepcopy(state))
        set_rng_state(self.saved["rng"])
        self.session.log.seek(self.saved["log_pos"])
        return copy.deepcopy(self.saved["result"])

    def restore(self, state: TrainState, loop: dict[str, Any], callbacks: list, progress: Progress) -> None:
        """Continue the phase from its checkpoint (`loop`: the schedule and batch generator)."""
        saved = self.saved
        if saved is None:
            return
        state.model.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
        loop["schedule"].load_state_dict(saved["schedule"])
        loop["generator"].set_state(saved["generator"])
        for cb, cb_state in zip(callbacks, saved["callbacks"], strict=True):
            cb.load_state_dict(copy.deepcopy(cb_state))
        set_rng_state(saved["rng"])
        state.step = saved["step"]
        progress.result, progress.best_acc = copy.deepcopy(saved["result"]), saved["best_acc"]
        progress.first_epoch, progress.first_loss = saved["epoch"], saved.get("first_loss")
        progress.start = time.perf_counter() - saved["elapsed"]
        self.session.log.seek(saved["log_pos"])

    def epoch_end(
        self, state: TrainState, loop: dict[str, Any], callbacks: list, progress: Progress, epochs: int
    ) -> None:
        """Checkpoint every `every` epochs (the last epoch is saved as the finished phase)."""
        epoch = state.epoch + 1
        due = epoch % self.session.every == 0 or stop_requested()
        if not due or epoch == epochs:
            return
        self.session.current = {
            "key": self.key, "epoch": epoch, "step": state.step,
            "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
            "schedule": loop["schedule"].state_dict(), "generator": loop["generator"].get_state(),
            "callbacks": [cb.state_dict() for cb in callbacks], "rng": rng_state(),
            "result": progress.result, "best_acc": progress.best_acc, "first_loss": progress.first_loss,
            "elapsed": time.perf_counter() - progress.start, "log_pos": self.session.log.position,
        }  # fmt: skip
        self.session.write()
        raise_if_stopped()

    def complete(self, model: nn.Module, callbacks: list[TrainCallback], result: TrainResult) -> None:
        entry = {
            "key": self.key, "model": model.state_dict(), "callbacks": [cb.state_dict() for cb in callbacks],
            "result": result, "rng": rng_state(), "log_pos": self.session.log.position,
        }  # fmt: skip
        self.session.finished.append(copy.deepcopy(entry))  # later phases change the live tensors
        self.session.current = None
        self.session.write()
        raise_if_stopped()
