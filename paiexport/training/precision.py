"""Mixed precision, channels_last and torch.compile for the training loop (`train.*`).

`train.precision`: `fp32` (default), `bf16` (autocast, no scaler needed) or `fp16` (autocast
and a GradScaler). Weights, masks and optimizer state stay fp32 under autocast: only the
matmuls and convolutions run in the low precision. Masks therefore stay exact: the post-step
re-application multiplies fp32 weights by 0/1. A step the GradScaler skips (inf/nan
gradients) changes no weight at all, so the pruned ones stay zero without the post-step hook.
Dense gradients that RigL/SNFS record under fp16 carry the loss scale; their per-layer
ranking, which is all RigL uses, does not change by a positive factor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum

import torch
from torch import nn

from paiexport.inputs import Inputs, map_inputs


class PrecisionName(StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


DTYPES = {PrecisionName.bf16: torch.bfloat16, PrecisionName.fp16: torch.float16}


class Precision:
    """Autocast for the forward pass and a (GradScaler-aware) backward and optimizer step."""

    def __init__(self, name: PrecisionName, device: str) -> None:
        self.name = PrecisionName(name)
        self.device_type = torch.device(device).type
        enabled = self.name is PrecisionName.fp16
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=enabled) if enabled else None

    @contextmanager
    def autocast(self) -> Iterator[None]:
        if self.name is PrecisionName.fp32:
            with nullcontext():
                yield
            return
        with torch.autocast(self.device_type, dtype=DTYPES[self.name]):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(); with fp16, skipped when the gradients overflowed (scale then drops)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def prepare_model(model: nn.Module, channels_last: bool) -> nn.Module:
    """channels_last memory format for conv2d nets (others have no 4-d activations: unchanged)."""
    if channels_last and has_conv2d(model):
        model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: Inputs, channels_last: bool) -> Inputs:
    """channels_last for every 4-d input (images) when asked; other inputs as they are."""

    def prepared(t: torch.Tensor) -> torch.Tensor:
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t

    return map_inputs(x, prepared) if channels_last else x


def maybe_compile(model: nn.Module, compile_model: bool) -> nn.Module:
    """torch.compile'd forward for training (parameters, masks and their hooks stay the model's)."""
    return torch.compile(model) if compile_model else model
