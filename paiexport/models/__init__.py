"""Model zoo: each model has typed arguments and a builder taking the data's shape.

Prunable weights are the `weight` of every Linear and Conv layer (see `paiexport.sparsity.masks`).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from math import prod
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field, ValidationError, field_validator
from torch import nn

from paiexport.config import StrictModel
from paiexport.errors import UserError, did_you_mean, first_line, shorten


class ModelName(StrEnum):
    mlp = "mlp"
    cnn1d = "cnn1d"
    lenet5 = "lenet5"
    resnet20 = "resnet20"


# Per-argument sanity bounds; whether the whole model fits is `check_model_size`'s job.
MAX_WIDTH = 65_536
MAX_LAYERS = 64
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]


class MLPArgs(StrictModel):
    hidden: list[Width] = Field(default_factory=lambda: [300, 100], min_length=1, max_length=MAX_LAYERS)


class CNN1dArgs(StrictModel):
    channels: list[Width] = Field(default_factory=lambda: [64, 64, 64], min_length=1, max_length=MAX_LAYERS)
    hidden: int = Field(default=256, ge=1, le=MAX_WIDTH)


class LeNet5Args(StrictModel):
    pass


class ResNet20Args(StrictModel):
    width: int = Field(default=16, ge=1, le=MAX_WIDTH // 4)  # the last stage has 4x width
    blocks_per_stage: int = Field(default=3, ge=1, le=MAX_LAYERS)


def _flat_features(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def build_mlp(args: MLPArgs, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: dict[str, nn.Module] = {"flatten": nn.Flatten()}
    width = prod(input_shape)
    for i, h in enumerate(args.hidden, start=1):
        layers[f"fc{i}"], layers[f"relu{i}"] = nn.Linear(width, h), nn.ReLU()
        width = h
    layers["out"] = nn.Linear(width, num_classes)
    return nn.Sequential(OrderedDict(layers))


def build_cnn1d(args: CNN1dArgs, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Conv-BN-ReLU stack for 1-D signals (MNIST-1D); the first conv keeps the length."""
    if len(input_shape) != 2:
        raise UserError(f"model.name: cnn1d needs 1-D signals (C, L), got input shape {input_shape}")
    layers: dict[str, nn.Module] = {}
    in_ch = input_shape[0]
    for i, out_ch in enumerate(args.channels, start=1):
        stride, kernel = (1, 5) if i == 1 else (2, 3)
        layers[f"conv{i}"] = nn.Conv1d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=False)
        layers[f"bn{i}"], layers[f"relu{i}"] = nn.BatchNorm1d(out_ch), nn.ReLU()
        in_ch = out_ch
    layers["flatten"] = nn.Flatten()
    flat = _flat_features(nn.Sequential(*layers.values()), input_shape)
    layers["fc1"], layers["relu_fc1"] = nn.Linear(flat, args.hidden), nn.ReLU()
    layers["out"] = nn.Linear(args.hidden, num_classes)
    return nn.Sequential(OrderedDict(layers))


def build_lenet5(args: LeNet5Args, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet-5 with 'same' padding on both convs so it also fits 8x8 digits."""
    if len(input_shape) != 3:
        raise UserError(f"model.name: lenet5 needs images (C, H, W), got input shape {input_shape}")
    layers: dict[str, nn.Module] = {
        "conv1": nn.Conv2d(input_shape[0], 6, 5, padding=2), "relu1": nn.ReLU(), "pool1": nn.MaxPool2d(2),
        "conv2": nn.Conv2d(6, 16, 5, padding=2), "relu2": nn.ReLU(), "pool2": nn.MaxPool2d(2),
        "flatten": nn.Flatten(),
    }  # fmt: skip
    flat = _flat_features(nn.Sequential(*layers.values()), input_shape)
    layers.update({
        "fc1": nn.Linear(flat, 120), "relu3": nn.ReLU(),
        "fc2": nn.Linear(120, 84), "relu4": nn.ReLU(),
        "out": nn.Linear(84, num_classes),
    })  # fmt: skip
    return nn.Sequential(OrderedDict(layers))


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; a 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016): 3 stages, `blocks_per_stage` blocks each."""

    def __init__(self, args: ResNet20Args, in_channels: int, num_classes: int) -> None:
        super().__init__()
        w = args.width
        self.conv1 = nn.Conv2d(in_channels, w, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        blocks: list[nn.Module] = []
        in_ch = w
        for stage, out_ch in enumerate((w, 2 * w, 4 * w)):
            for b in range(args.blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(torch.mean(out, dim=(2, 3), keepdim=True), 1))


def build_resnet20(args: ResNet20Args, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3:
        raise UserError(f"model.name: resnet20 needs images (C, H, W), got {input_shape}")
    return ResNet(args, input_shape[0], num_classes)


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


def _available_bytes() -> int:
    """MemAvailable on Linux (what can be allocated without swapping), else physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _meta_footprint(
    name: ModelName, args: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> tuple[int, int]:
    """(parameters, activation values of one training batch), built and run on the meta device."""
    with torch.device("meta"):
        model = build_model(name, args, input_shape, num_classes)
        sizes: list[int] = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()))
            for m in model.modules()
            if not list(m.children())
        ]
        model(torch.zeros(batch_size, *input_shape))
    for hook in hooks:
        hook.remove()
    return sum(p.numel() for p in model.parameters()), sum(sizes)


def check_model_size(
    name: ModelName, args: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> None:
    """Refuse, before anything is allocated, a model that cannot be built or would not fit in memory."""
    try:
        params, activations = _meta_footprint(name, args, input_shape, num_classes, batch_size)
    except (RuntimeError, ValueError) as exc:  # e.g. BatchNorm on a signal shrunk to one value
        first = first_line(exc, 200, kind=False)
        raise UserError(f"model.args: {first} (model {name.value}, input {input_shape})") from None
    # float32 weights, gradients and two optimizer moments; activations kept for backward plus
    # their gradients. An estimate, but it tells a typo (200000 channels) from a real model.
    needed = 4 * (4 * params + 2 * activations)
    available = _available_bytes()
    if needed > available:
        raise UserError(
            f"model.args: model {name.value} needs about {needed / 2**30:.1f} GiB to train "
            f"({params:,} parameters, batch {batch_size}); {available / 2**30:.1f} GiB available"
        )


def check_sample_batch(model: nn.Module, sample: torch.Tensor, num_classes: int | None = None) -> None:
    """One training-mode forward before any selection or training; the model is left unchanged.

    Shapes the model cannot take fail here as a one-line `model.args` error, not mid-run; so
    does an output that is not (batch, num_classes) logits.
    """
    state = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm stats move
    try:
        with torch.no_grad():
            out = model.train()(sample)
    except Exception as exc:  # user models raise anything (shape asserts, TypeError)
        raise UserError(f"model.args: the model fails on a sample batch: {first_line(exc, 200)}") from None
    finally:
        model.load_state_dict(state)
    want = (len(sample), num_classes)
    if num_classes is not None and (not isinstance(out, torch.Tensor) or tuple(out.shape) != want):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"model.name: output {got} on a sample batch of {tuple(sample.shape)}, expected {want}"
        )


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
        return args


MODELS_BY_NAME = {m.value for m in ModelName}
FACTORY_SPEC = re.compile(r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*|(torchvision|timm):[\w.-]+)$")


def _unknown_model(name: str) -> str:
    choices = ", ".join(sorted(MODELS_BY_NAME))
    raise ValueError(
        f"unknown model {shorten(repr(name))} (choose from {choices}, or package.module:callable)"
    )
