"""What the bundled architectures share: argument bounds and the size of a flattened feature stack."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

# Per-argument sanity bounds; whether the whole model fits is `check_model_size`'s job.
MAX_WIDTH = 65_536
MAX_LAYERS = 64
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]


def flat_features(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """The number of values `features` gives for one sample of `input_shape`."""
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())
