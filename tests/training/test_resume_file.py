"""checkpoints/resume.pt: plain data only, its format number read before anything is loaded,
every bad file one line naming it."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from paiexport.errors import UserError
from paiexport.training.result import TrainResult
from paiexport.training.resume_file import (
    FORMAT,
    LoopState,
    PhaseState,
    ResumeState,
    format_of,
    load,
    rng_state,
    set_rng_state,
)


def phase(key: str, loop: LoopState | None = None) -> PhaseState:
    model = {"w": torch.arange(4.0).view(2, 2)}
    return PhaseState(key, model, [{"seen": 3}], TrainResult(best_epoch=2), rng_state(), 5, loop)


def saved(tmp_path, state: ResumeState | dict) -> object:
    path = tmp_path / "resume.pt"
    torch.save(state.to_dict() if isinstance(state, ResumeState) else state, path)
    return path


def draws() -> tuple:
    return torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random()


def test_the_rng_state_round_trips_every_global_stream():
    state = rng_state()
    first = draws()
    set_rng_state(state)
    assert draws() == first


def test_a_state_round_trips_through_the_file(tmp_path):
    loop = LoopState(1, 7, {"state": {}}, {"step_index": 7}, torch.Generator().get_state(), 0.5, None, 1.5)
    path = saved(tmp_path, ResumeState([phase("select")], phase("train", loop)))
    assert format_of(path) == FORMAT
    back = load(path)
    assert [p.key for p in back.finished] == ["select"] and back.finished[0].loop is None
    current, loop = back.current, back.current.loop
    assert (current.key, current.log_pos, current.callbacks) == ("train", 5, [{"seen": 3}])
    assert current.result == TrainResult(best_epoch=2)
    assert torch.equal(current.model["w"], torch.arange(4.0).view(2, 2))
    assert (loop.epoch, loop.step, loop.first_loss, loop.elapsed) == (1, 7, None, 1.5)


def test_another_format_is_refused_before_loading(tmp_path):
    path = saved(tmp_path, {"format": 1, "finished": [], "current": None})
    with pytest.raises(UserError) as caught:
        load(path)
    assert (
        str(caught.value)
        == f"--resume: {path} was written by another paiexport version (format 1, not {FORMAT})"
    )
    assert format_of(saved(tmp_path, {"finished": [], "format": FORMAT})) is None  # format must come first


def test_a_truncated_file_is_damaged(tmp_path):
    path = saved(tmp_path, ResumeState([], None))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match=r"^--resume: .*resume\.pt is damaged or truncated \("):
        load(path)


class Planted:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_an_object_that_is_not_plain_data_is_refused_without_running(tmp_path):
    marker = tmp_path / "MARKER"
    path = saved(tmp_path, {"format": FORMAT, "finished": [], "current": Planted(str(marker))})
    with pytest.raises(UserError) as caught:
        load(path)
    assert str(caught.value).endswith("not plain data: refused, nothing run") and "mkdir" in str(caught.value)
    assert not marker.exists()


def test_a_phase_missing_a_field_names_it(tmp_path):
    plain = ResumeState([], phase("train")).to_dict()  # in progress, but without its loop fields
    with pytest.raises(UserError, match=r"is damaged: field 'epoch' is missing or a NoneType$"):
        load(saved(tmp_path, plain))
    with pytest.raises(UserError, match=r"is damaged: field 'finished' is missing or not a list$"):
        load(saved(tmp_path, {"format": FORMAT, "finished": {}}))
