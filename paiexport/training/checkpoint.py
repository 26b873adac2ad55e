"""Crash-safe training: one resume file per run (`checkpoints/resume.pt`), written atomically.

A run's training is a sequence of trainer calls, its *phases* (LTH levels, the dense and
fine-tune phases of magnitude_after_training, or one phase). The file holds every finished
phase (the model it left, its callbacks' `state_dict()`, its result, the RNG streams and the
metrics position) and the last checkpoint of the phase in progress (also the optimizer, LR
schedule, batch-order generator, best accuracy and elapsed time). Resuming runs the method's
`fit` again from the start: a finished phase is restored instead of trained, the code between
phases runs again on the restored state (it is deterministic), and the phase in progress
continues from its checkpoint. So methods need no special cases, only callbacks that
`state_dict()` what they carry across steps. The file holds plain data only (`resume_file.py`):
a planted or swapped file cannot run code, and one that does not fit the run is refused by name.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paiexport.errors import UserError, first_line, shorten
from paiexport.out_path import short
from paiexport.paths import temporary
from paiexport.training import resume_file
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.result import TrainResult
from paiexport.training.resume_file import LoopState, PhaseState, ResumeState, rng_state, set_rng_state
from paiexport.training.stop import raise_if_stopped, stop_requested


def atomic_save(obj: Any, path: Path) -> None:
    """Temporary file, fsync, rename: a kill leaves the old file or the new one, never half of one."""
    tmp = temporary(path)
    try:
        with tmp.open("wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (disk full, a signal) leaves nothing behind
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


@dataclass
class Progress:
    """The loop's counters that a checkpoint carries."""

    result: TrainResult
    start: float  # perf_counter origin of the phase's elapsed time
    best_score: float = -math.inf  # the best validation primary metric, negated when lower is better
    first_epoch: int = 0
    first_loss: float | None = None  # the divergence limit's reference (first step's loss)


class TrainSession:
    """A run's training across its phases: writes the resume file, restores from it."""

    def __init__(self, path: Path, log: MetricsLog, every: int = 1) -> None:
        self.path, self.log, self.every = path, log, every
        self.finished: list[PhaseState] = []
        self.current: PhaseState | None = None
        self.calls = 0

    @classmethod
    def resume(cls, path: Path, log: MetricsLog, every: int = 1) -> TrainSession:
        """The saved training (`resume_file.load`: plain data only, its format checked first)."""
        session = cls(path, log, every)
        saved = resume_file.load(path)
        session.finished, session.current = saved.finished, saved.current
        last = session.current or (session.finished[-1] if session.finished else None)
        log.resume(last.log_pos if last else 0)
        return session

    def describe(self) -> str:
        """Where the saved training stands, for the resume message."""
        if self.current is not None and self.current.loop is not None:
            return f"phase {len(self.finished) + 1}, epoch {self.current.loop.epoch}"
        return f"{len(self.finished)} training phase(s) finished"

    def begin(self, tag: str) -> Phase:
        index, key = self.calls, f"{self.calls}:{tag}"
        self.calls += 1
        saved = self.finished[index] if index < len(self.finished) else None
        if saved is None and index == len(self.finished):
            saved = self.current
        if saved is not None and saved.key != key:
            raise UserError(
                f"--resume: the saved training has phase {shorten(saved.key)!r} where this one has {key!r}"
            )
        return Phase(self, key, saved, done=index < len(self.finished))

    def write(self) -> None:
        atomic_save(ResumeState(self.finished, self.current).to_dict(), self.path)


@contextmanager
def _fitting(path: Path) -> Iterator[None]:
    """A saved state this run's model, optimizer, schedule or callbacks cannot take: one line."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise UserError(f"--resume: {short(path)} does not fit this run ({first_line(exc)})") from None


def _load_model(model: nn.Module, saved: dict[str, Any], path: Path) -> None:
    """`load_state_dict`, after naming the first tensor that is missing or of another shape."""
    live = model.state_dict()
    for name in [*live, *(n for n in saved if n not in live)]:
        there, here = saved.get(name), live.get(name)
        there_shape = tuple(there.shape) if isinstance(there, torch.Tensor) else "missing"
        here_shape = tuple(here.shape) if here is not None else "missing"
        if there_shape != here_shape:
            raise UserError(
                f"--resume: {short(path)} does not fit the model: {shorten(name)} is {there_shape} there, "
                f"{here_shape} here"
            )
    model.load_state_dict(saved)


@dataclass
class Phase:
    """One trainer call: restored whole (done), continued from a checkpoint, or trained afresh."""

    session: TrainSession
    key: str
    saved: PhaseState | None
    done: bool

    def finish_restored(self, model: nn.Module, callbacks: list[TrainCallback]) -> TrainResult:
        """A finished phase: leave the model, callbacks, RNGs and metrics position as it did."""
        saved, path = self.saved, self.session.path
        with _fitting(path):
            _load_model(model, saved.model, path)
            for cb, state in zip(callbacks, saved.callbacks, strict=True):
                cb.load_state_dict(copy.deepcopy(state))
            set_rng_state(saved.rng)
        self.session.log.seek(saved.log_pos)
        return copy.deepcopy(saved.result)

    def restore(self, state: TrainState, loop: dict[str, Any], callbacks: list, progress: Progress) -> None:
        """Continue the phase from its checkpoint (`loop`: the schedule and batch generator)."""
        if self.saved is None:
            return
        saved, at, path = self.saved, self.saved.loop, self.session.path
        with _fitting(path):
            _load_model(state.model, saved.model, path)
            state.optimizer.load_state_dict(at.optimizer)
            loop["schedule"].load_state_dict(at.schedule)
            loop["generator"].set_state(at.generator)
            for cb, cb_state in zip(callbacks, saved.callbacks, strict=True):
                cb.load_state_dict(copy.deepcopy(cb_state))
            set_rng_state(saved.rng)
        state.step = at.step
        progress.result, progress.best_score = copy.deepcopy(saved.result), at.best_score
        progress.first_epoch, progress.first_loss = at.epoch, at.first_loss
        progress.start = time.perf_counter() - at.elapsed
        self.session.log.seek(saved.log_pos)

    def epoch_end(
        self, state: TrainState, loop: dict[str, Any], callbacks: list, progress: Progress, epochs: int
    ) -> None:
        """Checkpoint every `every` epochs (the last epoch is saved as the finished phase)."""
        epoch = state.epoch + 1
        due = epoch % self.session.every == 0 or stop_requested()
        if not due or epoch == epochs:
            return
        at = LoopState(
            epoch,
            state.step,
            state.optimizer.state_dict(),
            loop["schedule"].state_dict(),
            loop["generator"].get_state(),
            progress.best_score,
            progress.first_loss,
            time.perf_counter() - progress.start,
        )
        callback_states = [cb.state_dict() for cb in callbacks]
        model, position = state.model.state_dict(), self.session.log.position
        self.session.current = PhaseState(
            self.key, model, callback_states, progress.result, rng_state(), position, at
        )
        self.session.write()
        raise_if_stopped()

    def complete(self, model: nn.Module, callbacks: list[TrainCallback], result: TrainResult) -> None:
        entry = PhaseState(
            self.key,
            model.state_dict(),
            [cb.state_dict() for cb in callbacks],
            result,
            rng_state(),
            self.session.log.position,
        )
        self.session.finished.append(copy.deepcopy(entry))  # later phases change the live tensors
        self.session.current = None
        self.session.write()
        raise_if_stopped()
