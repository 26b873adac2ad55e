"""The recipe's `model` section: a bundled model with typed args, or a model factory."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from paiexport.config import StrictModel
from paiexport.errors import shorten
from paiexport.models.hf import PREFIX as HF_PREFIX
from paiexport.models.hf import check_hf_args
from paiexport.models.registry import MODELS_BY_NAME, ModelName, parse_model_args

FACTORY_SPEC = re.compile(r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*|(torchvision|timm):[\w.-]+)$")


class ModelConfig(StrictModel):
    """A bundled model (typed `args`) or "package.module:callable" / torchvision:NAME / timm:NAME."""

    name: str = Field(default=ModelName.cnn1d.value, max_length=300)
    args: dict[str, Any] = Field(default_factory=dict)

    @property
    def bundled(self) -> ModelName | None:
        return ModelName(self.name) if self.name in MODELS_BY_NAME else None

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name in MODELS_BY_NAME or FACTORY_SPEC.match(name):
            return name
        return _unknown_model(name)

    @field_validator("args")
    @classmethod
    def _args_fit_model(cls, args: dict[str, Any], info: Any) -> dict[str, Any]:
        name = info.data.get("name")
        if name in MODELS_BY_NAME:
            parse_model_args(ModelName(name), args)
        elif isinstance(name, str) and name.startswith(HF_PREFIX):
            check_hf_args(args)
        return args


def _unknown_model(name: str) -> str:
    choices = ", ".join(sorted(MODELS_BY_NAME))
    raise ValueError(
        f"unknown model {shorten(repr(name))} (choose from {choices}, or package.module:callable)"
    )
