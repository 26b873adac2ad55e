"""Generated shape images for segmentation: nothing downloaded, one seeded numpy Generator.

Each sample is a 32x32 single-channel image holding 1-3 filled shapes, circles (radius 3-7)
and axis-aligned rectangles (sides 4-13), each at its own brightness drawn from the same
range for both kinds, over Gaussian noise; a later shape covers an earlier one. The target is
the class of every pixel: 0 background, 1 circle, 2 rectangle. Telling a circle from a
rectangle of the same brightness takes the shape's outline, so the net has to look at a
neighbourhood, not at single pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

SIZE, TRAIN, TEST = 32, 1200, 300
BACKGROUND, CIRCLE, RECTANGLE = 0, 1, 2


def _draw(rng: np.random.Generator, image: np.ndarray, label: np.ndarray) -> None:
    """One random shape painted into `image` and `label`."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    brightness = rng.uniform(0.6, 1.4)
    if rng.random() < 0.5:
        r = rng.integers(3, 8)
        cy, cx = rng.integers(r, SIZE - r, size=2)
        inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
        kind = CIRCLE
    else:
        h, w = rng.integers(4, 14, size=2)
        top, left = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
        inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
        kind = RECTANGLE
    image[inside] = brightness
    label[inside] = kind


def generate(count: int, seed: int) -> TensorDataset:
    """`count` images (N, 1, 32, 32) float32 and their class maps (N, 32, 32) int64."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 1, SIZE, SIZE), dtype=np.float32)
    labels = np.zeros((count, SIZE, SIZE), dtype=np.int64)
    for i in range(count):
        for _ in range(rng.integers(1, 4)):
            _draw(rng, images[i, 0], labels[i])
    images += rng.normal(0.0, 0.25, size=images.shape).astype(np.float32)
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


def datasets() -> tuple[TensorDataset, TensorDataset]:
    """1,200 training and 300 test images, from different seeds."""
    return generate(TRAIN, seed=0), generate(TEST, seed=1)
