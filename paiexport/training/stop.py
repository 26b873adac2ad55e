"""SIGINT / SIGTERM during training: finish the epoch, write a checkpoint, then stop.

Outside training (selection, export, benchmark) the signal stops the run at once: the resume
file already holds everything training produced.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from paiexport.errors import Interrupted

_state = {"training": False, "signal": 0}


def stop_requested() -> bool:
    return _state["signal"] != 0


def _handle(signum: int, frame: FrameType | None) -> None:
    if _state["training"] and not _state["signal"]:
        _state["signal"] = signum  # the loop stops after the epoch's checkpoint
        return
    raise Interrupted(signum)  # a second signal, or outside training: stop now


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
def training() -> Iterator[None]:
    _state["training"] = True
    try:
        yield
    finally:
        _state["training"] = False


def raise_if_stopped() -> None:
    """Called by the loop right after a checkpoint was written."""
    if _state["signal"]:
        raise Interrupted(_state["signal"])
