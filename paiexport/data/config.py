"""The recipe's `data:` section, typed here so loaders take it without knowing the recipe."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from paiexport.config import StrictModel
from paiexport.errors import shorten

MAX_BATCH = 65_536  # a larger batch of even the smallest model is an input mistake
FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # "package.module:callable"


class DatasetName(StrEnum):
    digits = "digits"
    mnist1d = "mnist1d"
    synthetic = "synthetic"


class FileFormat(StrEnum):
    """Datasets read from `data.path`."""

    mnist = "mnist"
    fashion_mnist = "fashion_mnist"
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    npz = "npz"
    imagefolder = "imagefolder"


BUNDLED = {d.value for d in DatasetName}
FORMATS = {f.value for f in FileFormat}


class MeanStd(StrictModel):
    mean: list[float] = Field(min_length=1, max_length=4096)
    std: list[Annotated[float, Field(gt=0.0)]] = Field(min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _same_length(self) -> MeanStd:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values, std {len(self.std)}: one per channel")
        return self


class AugmentConfig(StrictModel):
    """Training-only image augmentation (N, C, H, W); validation and test data are never changed."""

    random_crop: int = Field(default=0, ge=0, le=1024, description="padding of a random crop; 0 = off")
    horizontal_flip: bool = False


class DataConfig(StrictModel):
    name: str = Field(default=DatasetName.mnist1d.value, max_length=300)
    path: str | None = Field(default=None, max_length=4096, description="folder or file of the dataset")
    batch_size: int = Field(default=128, ge=1, le=MAX_BATCH)
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    num_classes: int | None = Field(default=None, ge=2, le=1_000_000, description="labels lie in [0, it)")
    num_workers: int = Field(default=0, ge=0, le=64, description="DataLoader workers (streamed data)")
    image_size: int | None = Field(default=None, ge=1, le=4096, description="imagefolder: resize to it")
    grayscale: bool = False
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    normalize: Literal["auto", "none"] | MeanStd = "none"

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name in BUNDLED or name in FORMATS or FACTORY.match(name):
            return name
        choices = ", ".join([*BUNDLED, *FORMATS])
        raise ValueError(
            f"unknown dataset {shorten(repr(name))} (choose from {choices}, or package.module:callable)"
        )

    @model_validator(mode="after")
    def _path_when_needed(self) -> DataConfig:
        if self.name in FORMATS and not self.path:
            raise ValueError(f"data.path: {self.name} is read from files; give their folder")
        return self
