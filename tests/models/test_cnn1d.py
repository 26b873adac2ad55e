"""The bundled 1-D CNN: the first conv keeps the length, each later one halves it."""

from __future__ import annotations

import pytest
import torch

from paiexport.errors import UserError
from paiexport.models.cnn1d import CNN1dArgs, build_cnn1d


def test_shapes_by_hand():
    model = build_cnn1d(CNN1dArgs(channels=[4, 8, 8], hidden=16), (1, 40), 10)
    # lengths 40 (kernel 5, stride 1), then (40 + 2 - 3) // 2 + 1 = 20, then 10: 8 x 10 features
    assert model.fc1.in_features == 80 and model.fc1.out_features == 16 and model.out.out_features == 10
    weights = [model.conv1.weight, model.conv2.weight, model.conv3.weight]
    assert [tuple(w.shape) for w in weights] == [(4, 1, 5), (8, 4, 3), (8, 8, 3)]
    assert all(getattr(model, f"conv{i}").bias is None for i in (1, 2, 3))  # BN follows each conv
    assert model.eval()(torch.zeros(2, 1, 40)).shape == (2, 10)


def test_images_are_refused_naming_the_model():
    with pytest.raises(
        UserError, match=r"^model.name: cnn1d needs 1-D signals \(C, L\), got input shape \(1, 8, 8\)$"
    ):
        build_cnn1d(CNN1dArgs(), (1, 8, 8), 10)
