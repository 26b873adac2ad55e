"""SIGINT/SIGTERM: inside an epoch the first one waits for the checkpoint, anywhere else (and a
second one) stops at once; the handlers are put back afterwards."""

from __future__ import annotations

import signal
import threading

import pytest

from paiexport.errors import Interrupted
from paiexport.training import stop


@pytest.fixture(autouse=True)
def clean_state(monkeypatch):
    """Each test starts with no pending signal and leaves none behind for other tests."""
    monkeypatch.setitem(stop._state, "signal", 0)
    monkeypatch.setitem(stop._state, "epoch", False)


def test_outside_an_epoch_a_signal_stops_at_once():
    with stop.stop_on_signals(), pytest.raises(Interrupted) as caught:
        signal.raise_signal(signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM


def test_inside_an_epoch_the_first_signal_waits_for_the_checkpoint():
    with stop.stop_on_signals():
        with stop.epoch():
            signal.raise_signal(signal.SIGINT)
            assert stop.stop_requested()  # still running: the epoch finishes
        with pytest.raises(Interrupted) as caught:
            stop.raise_if_stopped()  # after the checkpoint
    assert caught.value.signum == signal.SIGINT


def test_a_second_signal_inside_an_epoch_stops_at_once():
    with stop.stop_on_signals(), stop.epoch():
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(Interrupted) as caught:
            signal.raise_signal(signal.SIGINT)
    assert caught.value.signum == signal.SIGINT


def test_handlers_are_restored_and_nothing_pending_means_no_stop():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop.stop_on_signals():
        assert signal.getsignal(signal.SIGTERM) is stop._handle
        stop.raise_if_stopped()
        assert not stop.stop_requested()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_outside_the_main_thread_the_handlers_stay():
    seen = []

    def run() -> None:
        with stop.stop_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert seen == [before]
