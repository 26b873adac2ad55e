"""The recipe's `validate:` section, typed here so the verify layer needs no Recipe."""

from __future__ import annotations

from pydantic import Field

from paiexport.config import StrictModel


class ValidateConfig(StrictModel):
    max_accuracy_drop: float = Field(
        default=1.0,
        ge=0.0,
        le=100.0,
        description="classification: points of test accuracy a variant may lose vs PyTorch",
    )
    max_metric_drop: float | None = Field(
        default=None,
        ge=0.0,
        description="how much of the task's primary metric (in its own unit; points for accuracy) "
        "an int8 file may lose vs PyTorch; default: max_accuracy_drop for classification, else the task's",
    )
