"""A custom task: the user's loss, metrics and baseline imported from the recipe's folder; every bad
spec or result refused in one line naming the field."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from pydantic import ValidationError

from paiexport.errors import UserError
from paiexport.reporting.quality import TaskInfo
from paiexport.tasks import make_task
from paiexport.tasks.custom import Custom, CustomConfig

USER_TASK = """
import torch

CALLS = []
NOT_CALLABLE = 3

def mse(outputs, targets):
    return ((outputs.squeeze(1) - targets) ** 2).mean()

def mae(outputs, targets):
    CALLS.append(len(targets))
    return float((outputs.squeeze(1) - targets).abs().mean())

def worst(outputs, targets):
    return torch.tensor((outputs.squeeze(1) - targets).abs().max().item())

def spread(train, test):
    return float(((test - train.mean()) ** 2).mean())

def rows(outputs, targets):
    return outputs

def text(outputs, targets):
    return "high"

def nan(outputs, targets):
    return float("nan")

def raises(outputs, targets):
    raise ValueError("bad metric\\nsecond line")
"""

Y = torch.tensor([1.0, 2.0, 4.0])
OUT = torch.tensor([[1.0], [3.0], [2.0]])


@pytest.fixture
def user(tmp_path):
    """The folder of a user module with a name no other test imports (sys.modules cleaned up)."""
    name = f"usertask_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(USER_TASK)
    yield tmp_path, name
    sys.modules.pop(name, None)


def config(module: str, **fields) -> CustomConfig:
    raw = {
        "name": "custom",
        "loss": f"{module}:mse",
        "metrics": {"mae": f"{module}:mae", "worst": f"{module}:worst"},
        "primary": "mae",
        "higher_is_better": False,
    }
    return CustomConfig.model_validate({**raw, **fields})


def bound(user, **fields) -> Custom:
    folder, module = user
    return make_task(config(module, **fields)).bind([folder])


def test_loss_metrics_and_baseline_come_from_the_users_module(user):
    t = bound(user, baseline=f"{user[1]}:spread")
    # errors [0, 1, -2]: mse (0 + 1 + 4) / 3 = 5/3; mae 3 / 3 = 1; worst 2
    assert float(t.loss(OUT, t.targets(Y, "data.train"))) == pytest.approx(5 / 3)
    # training mean 2; test [1, 2, 4]: ((-1)^2 + 0 + 2^2) / 3 = 5/3
    assert t.baseline(torch.tensor([1.0, 3.0]), Y, 1) == pytest.approx(5 / 3)
    assert (t.primary, t.short, t.higher_is_better, t.default_max_drop) == ("mae", "mae", False, 0.0)


def test_each_metric_is_called_once_on_the_whole_split(user):
    t = bound(user)
    meter = t.meter()
    meter.add(OUT[:1], Y[:1])
    meter.add(OUT[1:], Y[1:])
    assert meter.result() == {"mae": pytest.approx(1.0), "worst": pytest.approx(2.0)}
    assert sys.modules[user[1]].CALLS == [3]


def test_without_a_baseline_no_model_is_ever_at_baseline(user):
    lower = bound(user)
    assert lower.baseline(Y, Y, 1) == math.inf and not lower.at_baseline(1e30, math.inf)
    higher = bound(user, higher_is_better=True)
    assert higher.baseline(Y, Y, 1) == -math.inf and not higher.at_baseline(-1e30, -math.inf)


@pytest.mark.parametrize("y", [Y, torch.tensor([1, 2, 4]), torch.zeros(3, 2, dtype=torch.float64)])
def test_int_and_float_targets_pass_unchanged(y):
    t = make_task(config("m"))
    assert t.targets(y, "data.train") is y


@pytest.mark.parametrize("y", [torch.tensor([True, False]), torch.tensor([1 + 1j])])
def test_bool_and_complex_targets_are_refused_naming_task_and_where(y):
    with pytest.raises(
        UserError, match=r"^task.name custom: data.train: targets are (bool|complex64)\("
    ) as err:
        make_task(config("m")).targets(y, "data.train")
    assert "\n" not in str(err.value)


def test_output_size_is_values_per_sample_for_floats_and_max_plus_one_for_ints():
    t = make_task(config("m"))
    assert t.output_size(torch.zeros(4, 2, 3), torch.zeros(2, 2, 3), None) == 6
    assert t.output_size(torch.tensor([0, 4]), torch.tensor([6]), None) == 7
    assert t.output_size(torch.tensor([0, 4]), torch.tensor([6]), 10) == 10
    with pytest.raises(UserError, match=r"data.num_classes: 3 declared, but the targets need 7 classes"):
        t.output_size(torch.tensor([0, 4]), torch.tensor([6]), 3)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"loss": "not a spec"}, ("loss",)),
        ({"loss": "pkg.mod"}, ("loss",)),
        ({"metrics": {"mae": "mod:fn()"}, "primary": "mae"}, ("metrics", "mae")),
        ({"metrics": {"m-ae": "mod:fn"}, "primary": "m-ae"}, ("metrics", "m-ae", "[key]")),
        ({"metrics": {}}, ("metrics",)),
        ({"baseline": "mod:"}, ("baseline",)),
        ({"primary": "accuracy"}, ()),
        ({"higher_is_better": None}, ("higher_is_better",)),
    ],
)
def test_a_bad_config_is_refused_naming_the_field(fields, loc):
    with pytest.raises(ValidationError) as err:
        config("mod", **fields)
    first = err.value.errors()[0]
    assert first["loc"] == loc
    if not loc:
        assert "primary 'accuracy' is not a key of metrics (mae, worst)" in first["msg"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"loss": "nowhere_to_be_found:mse"}, "task.loss: module 'nowhere_to_be_found' not found"),
        ({"loss": "{m}:absent"}, "task.loss: module '{m}' has no attribute 'absent'"),
        (
            {"metrics": {"mae": "{m}:NOT_CALLABLE"}},
            "task.metrics.mae: {m}:NOT_CALLABLE is a int, not callable",
        ),
        ({"baseline": "{m}:nothing"}, "task.baseline: module '{m}' has no attribute 'nothing'"),
    ],
)
def test_bind_refuses_a_spec_that_does_not_import_naming_the_field(user, fields, says):
    module = user[1]
    filled = {
        k: v.format(m=module) if isinstance(v, str) else {n: s.format(m=module) for n, s in v.items()}
        for k, v in fields.items()
    }
    with pytest.raises(UserError) as err:
        bound(user, **filled)
    assert str(err.value).startswith(says.format(m=module)) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("metric", "says"),
    [
        ("rows", "task.metrics.bad: returned float32(3, 1), not a number"),
        ("text", "task.metrics.bad: returned str, not a number"),
        ("nan", "task.metrics.bad: returned NaN"),
        ("raises", "task.metrics.bad raised ValueError: bad metric"),
    ],
)
def test_a_metric_that_fails_or_returns_no_number_is_refused_naming_it(user, metric, says):
    t = bound(user, metrics={"mae": f"{user[1]}:mae", "bad": f"{user[1]}:{metric}"})
    meter = t.meter()
    meter.add(OUT, Y)
    with pytest.raises(UserError) as err:
        meter.result()
    assert str(err.value) == says


def test_a_loss_that_is_not_a_scalar_is_refused_naming_task_loss(user):
    t = bound(user, loss=f"{user[1]}:rows")
    with pytest.raises(UserError, match=r"^task.loss: returned float32\(3, 1\), not a scalar float tensor$"):
        t.loss(OUT, Y)


def test_using_the_task_before_bind_is_a_programming_error():
    with pytest.raises(RuntimeError, match="bind"):
        make_task(config("m")).loss(OUT, Y)


def test_its_description_is_what_report_json_task_holds(user):
    # describe() once added the metric names, which report.json's `task` section refuses:
    # every custom run crashed at its report with a pydantic traceback
    t = bound(user, baseline=f"{user[1]}:spread")
    info = TaskInfo.model_validate({**t.describe(), "baseline": 1.0})
    assert (info.name, info.primary, info.higher_is_better) == ("custom", "mae", False)
