"""The `validate:` section and how a recipe picks the int8 limit for its task."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tiny import TINY_RECIPE

from paiexport.recipe import validate_recipe
from paiexport.tasks import task_by_name
from paiexport.verify.config import ValidateConfig


def recipe(**sections):
    return validate_recipe({**TINY_RECIPE, **sections}, "r.yaml")


def test_classification_keeps_max_accuracy_drop_as_its_limit_in_points():
    r = recipe(validate={"max_accuracy_drop": 0.5})
    assert r.max_metric_drop(task_by_name("classification")) == 0.5


def test_another_task_takes_its_own_default_in_its_own_unit():
    r = recipe(task={"name": "regression"})
    assert r.max_metric_drop(r.make_task()) == task_by_name("regression").default_max_drop == 0.02


def test_max_metric_drop_wins_for_every_task():
    for name in ("classification", "regression"):
        r = recipe(validate={"max_metric_drop": 0.25})
        assert r.max_metric_drop(task_by_name(name)) == 0.25


def test_negative_limits_are_refused():
    with pytest.raises(ValidationError):
        ValidateConfig(max_metric_drop=-1)
    with pytest.raises(ValidationError):
        ValidateConfig(max_accuracy_drop=101)
