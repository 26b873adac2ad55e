"""The bundled models by name: each one's typed arguments and builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from torch import nn

from paiexport.config import StrictModel
from paiexport.errors import did_you_mean, shorten
from paiexport.models.cnn1d import CNN1dArgs, build_cnn1d
from paiexport.models.lenet5 import LeNet5Args, build_lenet5
from paiexport.models.mlp import MLPArgs, build_mlp
from paiexport.models.resnet import ResNet20Args, build_resnet20


class ModelName(StrEnum):
    mlp = "mlp"
    cnn1d = "cnn1d"
    lenet5 = "lenet5"
    resnet20 = "resnet20"


@dataclass(frozen=True)
class ModelSpec:
    args: type[StrictModel]
    build: Callable[[Any, tuple[int, ...], int], nn.Module]


MODELS: dict[ModelName, ModelSpec] = {
    ModelName.mlp: ModelSpec(MLPArgs, build_mlp),
    ModelName.cnn1d: ModelSpec(CNN1dArgs, build_cnn1d),
    ModelName.lenet5: ModelSpec(LeNet5Args, build_lenet5),
    ModelName.resnet20: ModelSpec(ResNet20Args, build_resnet20),
}
MODELS_BY_NAME = {m.value for m in ModelName}


def parse_model_args(name: ModelName, args: dict[str, Any]) -> StrictModel:
    """Validate `model.args` against the chosen model's typed arguments."""
    try:
        return MODELS[name].args.model_validate(args)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(shorten(p) for p in err["loc"])
        hint = ""
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(str(err["loc"][-1]), list(MODELS[name].args.model_fields))
        raise ValueError(f"args.{loc}: {shorten(err['msg'], 200)}{hint} (model {name.value})") from None


def build_model(
    name: ModelName, args: dict[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    spec = MODELS[name]
    return spec.build(spec.args.model_validate(args), input_shape, num_classes)
