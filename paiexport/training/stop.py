"""SIGINT / SIGTERM inside a training epoch: finish the epoch, write a checkpoint, then stop.

Anywhere else (reading data, selection, between phases, export, benchmark) the first signal
stops the run at once, even in a read that never returns (a FIFO nobody writes): the resume
file already holds everything training produced. A second signal always stops at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from paiexport.errors import Interrupted

_state = {"epoch": False, "signal": 0}


def stop_requested() -> bool:
    return _state["signal"] != 0


def _handle(signum: int, frame: FrameType | None) -> None:
    if _state["epoch"] and not _state["signal"]:
        _state["signal"] = signum  # the loop stops after the epoch's checkpoint
        return
    raise Interrupted(signum)  # a second signal, or outside an epoch: stop now


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Install the handlers for a run (main thread only; elsewhere the defaults stay)."""
    try:
        previous = {s: signal.signal(s, _handle) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    _state["signal"] = 0
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def epoch() -> Iterator[None]:
    """A training epoch and its checkpoint: the first signal waits for the checkpoint."""
    _state["epoch"] = True
    try:
        yield
    finally:
        _state["epoch"] = False


def raise_if_stopped() -> None:
    """Called by the loop right after a checkpoint was written."""
    if _state["signal"]:
        raise Interrupted(_state["signal"])
