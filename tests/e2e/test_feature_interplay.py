"""Where the merged features meet: resume (#14) with divergence (#9), trackers (#11), torchrun (#15)."""

from __future__ import annotations

import signal

import pytest
import torch
import yaml
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.data import DatasetName, load_data
from paiexport.errors import Interrupted
from paiexport.models import ModelName, build_model
from paiexport.training import loop, stop
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.checkpoint import TrainSession
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.trackers import TrackerCallback


class StopAfterFirstEpoch(TrainCallback):
    """Acts like a SIGTERM during the first epoch: the loop checkpoints, then stops."""

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch == 0:
            stop._state["signal"] = signal.SIGTERM


def test_resumed_training_keeps_the_divergence_reference_loss(tmp_path, monkeypatch):
    # A resumed run judges divergence against the run's first step, not its own first step.
    monkeypatch.setitem(stop._state, "signal", 0)  # restored however the test ends
    seen: list[float] = []
    real = loop.check_divergence
    monkeypatch.setattr(
        loop, "check_divergence", lambda loss, first, *a: seen.append(first) or real(loss, first, *a)
    )
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)

    def run(session: TrainSession, callbacks: list[TrainCallback]) -> None:
        torch.manual_seed(0)
        model = build_model(ModelName.mlp, {"hidden": [8]}, data.input_shape, 4)
        cfg = loop.TrainConfig(epochs=3)
        loop.train(
            model,
            data,
            cfg,
            batch_size=64,
            seed=0,
            metrics_path=tmp_path / "m",
            checkpoint_dir=tmp_path / "ck",
            callbacks=callbacks,
            session=session,
        )

    log = MetricsLog(tmp_path / "m")
    with pytest.raises(Interrupted):
        run(TrainSession(tmp_path / "resume.pt", log), [StopAfterFirstEpoch()])
    stop._state["signal"] = 0
    first, steps = seen[0], len(seen)
    assert torch.load(tmp_path / "resume.pt", weights_only=False)["current"]["first_loss"] == first
    run(TrainSession.resume(tmp_path / "resume.pt", MetricsLog(tmp_path / "m")), [StopAfterFirstEpoch()])
    assert len(seen) == 3 * steps and set(seen[steps:]) == {first}  # epochs 2 and 3, same reference


def test_tracker_step_axis_survives_a_resume(tmp_path):
    before = TrackerCallback([], tmp_path, "run")
    seen: list[int] = []
    before.sinks.append(lambda values, step: seen.append(step))
    for epoch in range(3):
        before.log({"epoch": epoch + 1})
    after = TrackerCallback([], tmp_path, "run")
    after.sinks.append(lambda values, step: seen.append(step))
    after.load_state_dict(before.state_dict())
    after.log({"epoch": 4})
    assert seen == [1, 2, 3, 4]


def test_resume_is_refused_under_torchrun(tmp_path, tiny_recipe_dict, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict))
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--resume"])
    assert result.exit_code == 2 and "--resume: not supported under torchrun" in result.output
    assert not (tmp_path / "run").exists()  # refused before any work
