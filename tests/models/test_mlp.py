"""The bundled MLP: flattened input, one Linear + ReLU per hidden width, then the classes."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from paiexport.models.mlp import MLPArgs, build_mlp


def test_layers_and_shapes_by_hand():
    model = build_mlp(MLPArgs(hidden=[8, 4]), (1, 5, 2), 3)
    assert [name for name, _ in model.named_children()] == ["flatten", "fc1", "relu1", "fc2", "relu2", "out"]
    assert (model.fc1.in_features, model.fc1.out_features) == (10, 8)
    assert (model.fc2.in_features, model.out.in_features, model.out.out_features) == (8, 4, 3)
    assert model(torch.zeros(2, 1, 5, 2)).shape == (2, 3)


def test_arguments():
    assert MLPArgs().hidden == [300, 100]
    for hidden in ([], [0], [8] * 65):
        with pytest.raises(ValidationError, match="hidden"):
            MLPArgs(hidden=hidden)
