"""The `train:` section: defaults, thread counts, devices, piecewise segments and their decay."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paiexport.training.config import LRScheduleConfig, OptimizerConfig, TrainConfig
from paiexport.training.lr_piecewise import FunctionLR, SetLR, TorchLR


def test_defaults():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.threads, cfg.device, cfg.checkpoint) == (30, "auto", "cpu", "best")
    assert cfg.checkpoint_every == 1 and cfg.log_to == [] and not cfg.compact
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.momentum) == ("sgd", 0.1, 0.9)
    assert cfg.lr_schedule.name == "cosine" and cfg.lr_schedule.segments == []


@pytest.mark.parametrize("threads", ["auto", 1, 1024])
def test_threads_auto_or_a_count(threads):
    assert TrainConfig(threads=threads).threads == threads


COUNT = "must be auto or a thread count from 1 to 1024, got"


@pytest.mark.parametrize(
    ("threads", "message"),
    [
        (0, f"{COUNT} '0'"),
        (1025, f"{COUNT} '1025'"),
        ("4", f"{COUNT} '4'"),
        ("max", f"{COUNT} 'max'"),
        (True, "threads: expected a number, got true"),
    ],
)
def test_other_threads_are_refused(threads, message):
    with pytest.raises(ValidationError) as caught:
        TrainConfig(threads=threads)
    assert message in str(caught.value)


def test_devices():
    assert TrainConfig(device="cuda:1").device == "cuda:1"
    for device in ("gpu", "cuda:", "cpu0"):
        with pytest.raises(ValidationError, match="device"):
            TrainConfig(device=device)


def test_segments_are_typed_by_kind():
    schedule = LRScheduleConfig(
        name="piecewise",
        segments=[
            {"kind": "set", "learning_rate": 0.1},
            {
                "kind": "function",
                "lr_func": "linear",
                "init_lr": 0.1,
                "final_lr": 0.0,
                "start_epoch": 0,
                "end_epoch": 2,
            },
            {"kind": "torch", "lr_class": "StepLR", "lr_kwargs": {"step_size": 1}, "start_epoch": 0},
        ],
    )
    assert [type(s) for s in schedule.segments] == [SetLR, FunctionLR, TorchLR]
    with pytest.raises(ValidationError, match="kind"):
        LRScheduleConfig(segments=[{"kind": "warmup", "learning_rate": 0.1}])


def test_a_weight_decay_schedule_needs_piecewise():
    decay = [{"start_epoch": 1.0, "weight_decay": 0.0}]
    with pytest.raises(
        ValidationError, match=r"train.weight_decay_schedule: needs train.lr_schedule.name: piecewise"
    ):
        TrainConfig(weight_decay_schedule=decay)
    assert TrainConfig(weight_decay_schedule=decay, lr_schedule={"name": "piecewise"}).weight_decay_schedule


@pytest.mark.parametrize("fields", [{"lr": 0.0}, {"momentum": 1.0}, {"weight_decay": -0.1}, {"name": "lamb"}])
def test_optimizer_bounds(fields):
    with pytest.raises(ValidationError, match=next(iter(fields))):
        OptimizerConfig(**fields)
