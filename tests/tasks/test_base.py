"""The task interface's defaults and helpers: one-line refusals, no silent casts, class ranges."""

from __future__ import annotations

from typing import Literal

import pytest
import torch

from paiexport.errors import UserError
from paiexport.tasks.base import (
    Meter,
    Task,
    TaskConfig,
    declared_width,
    in_range,
    require_float,
    require_integer,
    shape_text,
)


class PlainConfig(TaskConfig):
    name: Literal["plain"] = "plain"


class Plain(Task):
    """The least a task defines: every default of `Task` left as it is."""

    config_class = PlainConfig
    primary = "score"
    short = "score"
    default_max_drop = 0.1

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return outputs.sum()

    def meter(self) -> Meter:
        raise NotImplementedError

    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        return y

    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        return 1

    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        return 0.0


class LowerPlain(Plain):
    higher_is_better = False


def test_refuse_is_one_short_line_naming_the_task_and_where():
    with pytest.raises(UserError) as err:
        Plain(PlainConfig()).refuse("data.train", "x" * 500 + "\nsecond")
    message = str(err.value)
    assert message.startswith("task.name plain: data.train: xxx") and "\n" not in message
    assert len(message) < 200


@pytest.mark.parametrize("y", [torch.tensor([1.0]), torch.tensor([True]), torch.tensor([1j])])
def test_require_integer_casts_nothing(y):
    with pytest.raises(UserError) as err:
        require_integer(Plain(PlainConfig()), y, "data.test", "labels")
    expected = (
        f"task.name plain: data.test: targets are {shape_text(y)}; labels are integers (nothing is cast)"
    )
    assert str(err.value) == expected


def test_require_integer_widens_integers_to_int64():
    y = require_integer(Plain(PlainConfig()), torch.tensor([3, 1], dtype=torch.uint8), "data.test", "labels")
    assert y.dtype == torch.int64 and y.tolist() == [3, 1]


@pytest.mark.parametrize(
    ("y", "says"),
    [
        (torch.tensor([1]), r"targets are int64\(1,\); values are floats"),
        (torch.tensor([1.0, float("-inf")]), "targets hold NaN/inf"),
    ],
)
def test_require_float_refuses_integers_and_non_finite_values(y, says):
    with pytest.raises(UserError, match=says):
        require_float(Plain(PlainConfig()), y, "data.test", "values")


def test_require_float_gives_float32():
    y = require_float(Plain(PlainConfig()), torch.tensor([0.5], dtype=torch.float64), "data.test", "values")
    assert y.dtype == torch.float32 and y.tolist() == [0.5]


def test_in_range_names_the_first_offending_index_and_allows_the_ignore_value():
    t = Plain(PlainConfig())
    in_range(t, torch.tensor([0, 2, -100]), "data.test", 3, ignore=-100)
    in_range(t, torch.tensor([], dtype=torch.int64), "data.test", 3)
    with pytest.raises(UserError, match=r"target -1 outside \[0, 3\)"):
        in_range(t, torch.tensor([0, -1, 5]), "data.test", 3)
    with pytest.raises(UserError, match=r"target 3 outside \[0, 3\)"):
        in_range(t, torch.tensor([0, 3]), "data.test", 3)
    with pytest.raises(UserError, match=r"target -100 outside \[0, inf\)"):
        in_range(t, torch.tensor([0, -100]), "data.test", None)


def test_declared_width_may_exceed_what_the_targets_need_but_not_fall_short():
    t = Plain(PlainConfig())
    assert declared_width(t, 3, None, "classes") == 3
    assert declared_width(t, 3, 10, "classes") == 10
    with pytest.raises(
        UserError, match=r"^task.name plain: data.num_classes: 2 declared, but the targets need 3"
    ):
        declared_width(t, 3, 2, "classes")


def test_the_default_verdict_follows_the_direction_of_the_metric():
    higher, lower = Plain(PlainConfig()), LowerPlain(PlainConfig())
    assert higher.at_baseline(0.5, 0.5) and not higher.at_baseline(0.6, 0.5)
    assert lower.at_baseline(0.5, 0.5) and not lower.at_baseline(0.4, 0.5)
    assert higher.drop(0.9, 0.8) == pytest.approx(0.1) and lower.drop(0.9, 0.8) == pytest.approx(-0.1)


def test_the_default_metrics_match_is_float_noise_relative_above_one():
    t = Plain(PlainConfig())
    assert t.metrics_match({"score": 0.5}, {"score": 0.50009}, 10)
    assert not t.metrics_match({"score": 0.5}, {"score": 0.5002}, 10)
    assert t.metrics_match({"score": 1000.0}, {"score": 1000.09}, 10)
    assert not t.metrics_match({"score": 1000.0}, {"score": 1000.2}, 10)


def test_the_default_output_check_is_one_output_per_target():
    t = Plain(PlainConfig())
    t.check_outputs(torch.zeros(3, 7), torch.zeros(3), "model output")
    with pytest.raises(UserError, match=r"model output: output of shape \(2, 7\) for 3 targets"):
        t.check_outputs(torch.zeros(2, 7), torch.zeros(3), "model output")


def test_describe():
    assert LowerPlain(PlainConfig()).describe() == {
        "name": "plain",
        "primary": "score",
        "higher_is_better": False,
        "drop_scale": 1.0,
        "relative_drop": False,
        "percent": False,
    }
