"""Typed values of `sparsity.structure` and `sparsity.channel_reduce`.

Kept apart from `structure.py` (the algorithms) so `allocation.SparsityConfig` can use the
types without an import cycle. "N:M" is parsed once into `NMPattern`; nothing downstream
sees the string.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from pydantic import Field, model_validator

from paiexport.config import StrictModel


class StructureKind(str, Enum):
    unstructured = "unstructured"
    channel = "channel"


class ChannelReduce(str, Enum):
    """How per-weight scores become one score per output channel/neuron."""

    sum = "sum"
    mean = "mean"
    l2 = "l2"


class NMPattern(StrictModel):
    """Keep `n` of every `m` consecutive weights along the input dimension (e.g. 2:4)."""

    n: int = Field(ge=1)
    m: int = Field(ge=2)

    @model_validator(mode="after")
    def _n_below_m(self) -> NMPattern:
        if self.n >= self.m:
            raise ValueError(f"N:M needs N < M, got {self.n}:{self.m}")
        return self

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


Structure = StructureKind | NMPattern

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_structure(value: Any) -> Any:
    """'unstructured' | 'channel' | 'N:M' -> StructureKind | NMPattern (other values pass through)."""
    if isinstance(value, str) and ":" in value:
        match = _NM.match(value)
        if not match:
            raise ValueError(f"expected unstructured, channel or N:M such as 2:4, got {value!r}")
        n, m = int(match.group(1)), int(match.group(2))
        if not 1 <= n < m:
            # Checked here, not only in NMPattern: an error inside the union would be reported
            # as pydantic's per-branch internals instead of this sentence.
            raise ValueError(f"N:M needs 1 <= N < M, got {n}:{m}")
        return NMPattern(n=n, m=m)
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 2:4 as the base-60 integer 124.
        raise ValueError(f'write N:M in quotes, e.g. "2:4" (unquoted YAML reads it as the number {value})')
    if isinstance(value, str) and value not in StructureKind.__members__:
        raise ValueError(f"expected unstructured, channel or N:M such as 2:4, got {value!r}")
    return value
