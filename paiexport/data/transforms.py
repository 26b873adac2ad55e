"""Per-channel normalization and training-time image augmentation, on batches (N, C, ...)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from paiexport.data.config import AugmentConfig
from paiexport.data.splits import Augment
from paiexport.errors import UserError


def channel_stats(batches: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (dimension 1) over every sample, accumulated in float64."""
    total, total_sq, count = None, None, 0
    for x in batches:
        flat = x.double().transpose(0, 1).reshape(x.shape[1], -1)
        s, sq = flat.sum(1), (flat * flat).sum(1)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += flat.shape[1]
    if total is None or count == 0:
        raise UserError("data.normalize: auto needs training samples")
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)  # constant channels
    return tuple(mean.tolist()), tuple(std.tolist())


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel of a batch (N, C, ...)."""
    if x.dim() < 2 or x.shape[1] != len(mean):
        raise UserError(
            f"data.normalize: {len(mean)} channel values for samples of shape {tuple(x.shape[1:])}"
        )
    view = (1, len(mean)) + (1,) * (x.dim() - 2)
    m = torch.tensor(mean, dtype=x.dtype).view(view)
    s = torch.tensor(std, dtype=x.dtype).view(view)
    return (x - m) / s


def make_augment(cfg: AugmentConfig, input_shape: tuple[int, ...]) -> Augment | None:
    if cfg.random_crop == 0 and not cfg.horizontal_flip:
        return None
    if len(input_shape) != 3:
        raise UserError(f"data.augment: needs images (C, H, W), got samples of shape {input_shape}")

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if cfg.random_crop:
            x = random_crop(x, cfg.random_crop, generator)
        if cfg.horizontal_flip:
            x = horizontal_flip(x, generator)
        return x

    return augment


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` and cut each image back to its size at a random offset."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (n, 1, 1, w)
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chans, rows, cols]


def horizontal_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
