"""Independent random streams derived from the recipe's one `seed`.

A generator seeded with the recipe seed itself replays the exact uniforms that
`torch.manual_seed(seed)` used to initialize the weights: "random" scores drawn from it
were the Kaiming-uniform weights in disguise, so random pruning kept the most positive
weights of every bias-free layer. Each purpose therefore gets its own derived seed.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for `purpose`, unrelated to `seed`'s own stream and to other purposes."""
    digest = hashlib.sha256(f"paiexport:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def stream(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, purpose))


def seed_everything(seed: int) -> None:
    """Global RNGs (model initialization draws from torch's) and deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
