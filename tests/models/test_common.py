"""What the bundled architectures share: argument bounds and flattened feature counts."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError
from torch import nn

from paiexport.models.common import MAX_WIDTH, Width, flat_features


def test_flat_features_by_hand():
    # length 40, kernel 3, stride 2, no padding: (40 - 3) // 2 + 1 = 19 positions x 4 channels
    assert flat_features(nn.Conv1d(1, 4, 3, stride=2), (1, 40)) == 76
    assert flat_features(nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.MaxPool2d(2)), (3, 8, 6)) == 24


def test_width_bounds():
    width = TypeAdapter(Width)
    assert width.validate_python(1) == 1 and width.validate_python(MAX_WIDTH) == MAX_WIDTH
    for bad in (0, MAX_WIDTH + 1):
        with pytest.raises(ValidationError):
            width.validate_python(bad)
