"""The bundled LeNet-5 with 'same' padding, so 8x8 digits fit too."""

from __future__ import annotations

import pytest
import torch

from paiexport.errors import UserError
from paiexport.models.lenet5 import LeNet5Args, build_lenet5


@pytest.mark.parametrize(("shape", "flat"), [((1, 8, 8), 16 * 2 * 2), ((3, 32, 32), 16 * 8 * 8)])
def test_two_poolings_quarter_each_side(shape, flat):
    model = build_lenet5(LeNet5Args(), shape, 10)
    assert model.conv1.in_channels == shape[0] and model.fc1.in_features == flat
    assert (model.fc1.out_features, model.fc2.out_features, model.out.out_features) == (120, 84, 10)
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_signals_are_refused_naming_the_model():
    with pytest.raises(
        UserError, match=r"^model.name: lenet5 needs images \(C, H, W\), got input shape \(1, 40\)$"
    ):
        build_lenet5(LeNet5Args(), (1, 40), 10)
