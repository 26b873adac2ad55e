"""The bundled models by name: typed arguments checked with the field named, one builder each."""

from __future__ import annotations

import pytest
import torch

from paiexport.models.registry import MODELS, ModelName, build_model, parse_model_args


def test_every_name_has_arguments_and_a_builder_that_fit():
    assert set(MODELS) == set(ModelName)
    shapes = {"mlp": (1, 40), "cnn1d": (1, 40), "lenet5": (1, 8, 8), "resnet20": (3, 8, 8)}
    small = {"mlp": {"hidden": [4]}, "cnn1d": {"channels": [2], "hidden": 4}, "resnet20": {"width": 2}}
    for name in ModelName:
        model = build_model(name, small.get(name.value, {}), shapes[name.value], 3)
        assert model.eval()(torch.zeros(2, *shapes[name.value])).shape == (2, 3), name


def test_parsed_arguments_are_typed():
    assert parse_model_args(ModelName.cnn1d, {"hidden": 8}).channels == [64, 64, 64]


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        (
            ModelName.mlp,
            {"hiden": [3]},
            "args.hiden: Extra inputs are not permitted (did you mean 'hidden'?) (model mlp)",
        ),
        (
            ModelName.mlp,
            {"hidden": [0]},
            "args.hidden.0: Input should be greater than or equal to 1 (model mlp)",
        ),
        (ModelName.lenet5, {"width": 3}, "args.width: Extra inputs are not permitted (model lenet5)"),
    ],
)
def test_bad_arguments_name_the_field_and_the_model(name, args, message):
    with pytest.raises(ValueError) as caught:
        parse_model_args(name, args)
    assert str(caught.value) == message
