"""The resume file of a run's training: atomic writes, finished and in-progress phases restored
exactly, and every file that does not fit the run refused with one line naming it."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.checkpoint import Progress, TrainSession, atomic_save
from paiexport.training.metrics_log import EpochRecord, MetricsLog
from paiexport.training.result import TrainResult
from paiexport.training.resume_file import FORMAT


class Counter(TrainCallback):
    """A callback carrying a count across steps."""

    def __init__(self, seen: int = 0) -> None:
        self.seen = seen

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = state["seen"]


class Planted:
    """Unpickling it runs code: it writes `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def model(seed: int = 0, outputs: int = 2) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(3, outputs)


def record(epoch: int) -> EpochRecord:
    return EpochRecord(epoch, 4 * epoch, 1.0, 0.5, 1.1, 0.4, 0.1, 0.2)


def session(tmp_path: Path, every: int = 1) -> TrainSession:
    return TrainSession(tmp_path / "resume.pt", MetricsLog(tmp_path / "metrics.jsonl"), every)


def resumed(tmp_path: Path) -> TrainSession:
    return TrainSession.resume(tmp_path / "resume.pt", MetricsLog(tmp_path / "metrics.jsonl"))


def finished_phase(tmp_path: Path, net: nn.Module, tag: str = "select") -> TrainResult:
    """One phase that logged an epoch and finished, saved in tmp_path/resume.pt."""
    s = session(tmp_path)
    phase = s.begin(tag)
    assert (phase.key, phase.saved, phase.done) == (f"0:{tag}", None, False)
    s.log.write(record(1))
    result = TrainResult(history=[record(1)], best_epoch=1, exported_epoch=1, seconds=2.5)
    phase.complete(net, [Counter(3)], result)
    return result


def test_atomic_save_replaces_the_file_whole(tmp_path) -> None:
    path = tmp_path / "resume.pt"
    atomic_save({"a": torch.ones(2)}, path)
    atomic_save({"a": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path)["a"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["resume.pt"]


def test_a_failed_atomic_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch) -> None:
    path = tmp_path / "resume.pt"
    atomic_save({"a": 1}, path)
    before = path.read_bytes()

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError):
        atomic_save({"a": 2}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["resume.pt"] and path.read_bytes() == before


def test_a_finished_phase_is_restored_exactly(tmp_path) -> None:
    net = model(0)
    saved_weights = {k: v.clone() for k, v in net.state_dict().items()}
    result = finished_phase(tmp_path, net)
    after_rng = torch.rand(3)  # the RNG streams moved on after the phase finished
    with torch.no_grad():
        net.weight.add_(1.0)  # later phases change the live tensors: the saved ones stay
    s = resumed(tmp_path)
    assert s.describe() == "1 training phase(s) finished"
    phase = s.begin("select")
    assert phase.done
    other, counter = model(1), Counter()
    assert phase.finish_restored(other, [counter]) == result
    assert all(torch.equal(other.state_dict()[k], v) for k, v in saved_weights.items())
    assert counter.seen == 3 and s.log.position == 1
    assert torch.equal(torch.rand(3), after_rng)  # the RNGs are where the phase left them


def test_the_next_phase_after_the_finished_ones_starts_afresh(tmp_path) -> None:
    finished_phase(tmp_path, model(0))
    s = resumed(tmp_path)
    s.begin("select")
    phase = s.begin("train")
    assert (phase.key, phase.saved, phase.done) == ("1:train", None, False)


def test_a_finished_phase_keeps_its_tensors_while_later_phases_train(tmp_path) -> None:
    s, net = session(tmp_path), model(0)
    before = net.weight.detach().clone()
    s.begin("dense").complete(net, [], TrainResult())
    with torch.no_grad():
        net.weight.add_(1.0)  # the fine-tuning phase trains the same tensors
    s.begin("finetune").complete(net, [], TrainResult())  # rewrites the file, both phases
    saved = resumed(tmp_path).finished
    assert [p.key for p in saved] == ["0:dense", "1:finetune"]
    assert torch.equal(saved[0].model["weight"], before) and torch.equal(saved[1].model["weight"], before + 1)


def test_a_resume_whose_phases_differ_is_refused_naming_both(tmp_path) -> None:
    finished_phase(tmp_path, model(0), tag="level0")
    with pytest.raises(UserError) as info:
        resumed(tmp_path).begin("dense")
    assert str(info.value) == "--resume: the saved training has phase '0:level0' where this one has '0:dense'"


def fresh_loop(net: nn.Module) -> tuple[TrainState, dict[str, Any]]:
    """A TrainState and the loop's schedule and batch-order generator, before any step."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (s + 1))
    state = TrainState(net, optimizer, nn.functional.cross_entropy, 4, 12, print)
    return state, {"schedule": schedule, "generator": torch.Generator().manual_seed(5)}


def loop_state(net: nn.Module) -> tuple[TrainState, dict[str, Any]]:
    """`fresh_loop` after two SGD steps."""
    state, loop = fresh_loop(net)
    for _ in range(2):
        net(torch.ones(2, 3)).sum().backward()
        state.optimizer.step()
        loop["schedule"].step()
        state.step += 1
    loop["generator"].manual_seed(7)
    return state, loop


def test_a_phase_in_progress_continues_from_its_checkpoint(tmp_path) -> None:
    s = session(tmp_path)
    net = model(0)
    state, loop = loop_state(net)
    progress = Progress(
        TrainResult(history=[record(1)], best_epoch=1), time.perf_counter() - 3.0, 0.4, 0, 2.3
    )
    phase = s.begin("train")
    phase.epoch_end(state, loop, [Counter(9)], progress, epochs=3)  # after epoch 1 of 3
    momentum = state.optimizer.state[net.weight]["momentum_buffer"].clone()

    s = resumed(tmp_path)
    assert s.describe() == "phase 1, epoch 1"
    fresh, counter = model(1), Counter()
    state2, loop2 = fresh_loop(fresh)
    progress2 = Progress(TrainResult(), time.perf_counter())
    s.begin("train").restore(state2, loop2, [counter], progress2)
    assert torch.equal(fresh.weight, net.weight) and torch.equal(fresh.bias, net.bias)
    assert torch.equal(state2.optimizer.state[fresh.weight]["momentum_buffer"], momentum)
    assert loop2["schedule"].last_epoch == 2 and state2.optimizer.param_groups[0]["lr"] == pytest.approx(
        0.1 / 3
    )
    assert torch.equal(loop2["generator"].get_state(), loop["generator"].get_state())
    assert (state2.step, counter.seen) == (2, 9)
    assert (progress2.best_score, progress2.first_epoch, progress2.first_loss) == (0.4, 1, 2.3)
    assert progress2.result == TrainResult(history=[record(1)], best_epoch=1)
    assert 3.0 <= time.perf_counter() - progress2.start < 60.0  # the elapsed time carries on


def test_checkpoints_come_every_n_epochs_and_not_after_the_last(tmp_path) -> None:
    s = session(tmp_path, every=2)
    state, loop = loop_state(model(0))
    phase = s.begin("")
    progress = Progress(TrainResult(), time.perf_counter())
    for epoch, written in ((0, False), (1, True), (3, False)):  # epochs 1, 2, 4 of 4
        (tmp_path / "resume.pt").unlink(missing_ok=True)
        state.epoch = epoch
        phase.epoch_end(state, loop, [], progress, epochs=4)
        assert (tmp_path / "resume.pt").is_file() == written, epoch + 1
    assert s.current.loop.epoch == 2


def test_a_saved_model_of_another_shape_is_refused_naming_the_tensor(tmp_path) -> None:
    finished_phase(tmp_path, model(0))
    phase = resumed(tmp_path).begin("select")
    with pytest.raises(UserError) as info:
        phase.finish_restored(model(0, outputs=4), [Counter()])
    path = tmp_path / "resume.pt"
    assert str(info.value) == f"--resume: {path} does not fit the model: weight is (2, 3) there, (4, 3) here"
    with pytest.raises(UserError, match=r"does not fit the model: extra is missing there, \(1,\) here"):
        bigger = model(0)
        bigger.register_buffer("extra", torch.zeros(1))
        phase.finish_restored(bigger, [Counter()])


def test_callback_states_that_do_not_fit_are_one_line(tmp_path) -> None:
    finished_phase(tmp_path, model(0))
    phase = resumed(tmp_path).begin("select")
    path = tmp_path / "resume.pt"
    with pytest.raises(UserError) as info:
        phase.finish_restored(model(0), [Counter(), Counter()])  # two callbacks now, one saved
    assert str(info.value).startswith(f"--resume: {path} does not fit this run (ValueError: ")
    assert "\n" not in str(info.value)

    class Other(TrainCallback):
        def load_state_dict(self, state: dict[str, Any]) -> None:
            state["threshold"]

    with pytest.raises(UserError) as info:
        phase.finish_restored(model(0), [Other()])
    assert str(info.value) == f"--resume: {path} does not fit this run (KeyError: 'threshold')"


def test_a_planted_resume_file_is_refused_and_runs_nothing(tmp_path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "resume.pt"
    torch.save({"format": FORMAT, "finished": [Planted(marker)], "current": None}, path)
    before = path.read_bytes()
    with pytest.raises(UserError, match=r"resume\.pt holds exec, not plain data: refused, nothing run"):
        resumed(tmp_path)
    assert not marker.exists() and path.read_bytes() == before
