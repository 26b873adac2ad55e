"""The types every sparsity module shares: masks, scores and the typed `sparsity:` section.

The algorithms (`masks`, `allocation`, `structure`, `collapse`) import these and never each
other for a type. "N:M" is parsed once into `NMPattern`; nothing downstream sees the string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import torch
from pydantic import Field, field_serializer, field_validator, model_validator

from paiexport.config import StrictModel
from paiexport.errors import did_you_mean, shorten

RULE_SPEC = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"  # "module:callable", imported from the recipe's folder
Masks = dict[str, torch.Tensor]  # parameter name ("0.weight") -> bool tensor of the weight's shape
Scores = dict[str, torch.Tensor]  # parameter name -> one score per weight (higher is kept)
# Kinds of channel groups `sparsity.group_targets` names (`channels.group_kind`).
GROUP_KINDS = ("heads", "ffn", "channels")


@dataclass(frozen=True)
class LayerTargets:
    """Targets a method sets itself in place of `sparsity.target` and its distribution (gmp's
    `method.groups`): report.json's `sparsity.target`, `distribution` and per-layer `target`."""

    target: float  # overall, weighted by layer sizes
    per_layer: dict[str, float | None]  # None: the layer has no target of its own
    distribution: str  # names where the targets come from, e.g. "groups"


class Distribution(StrEnum):
    uniform = "uniform"
    erk = "erk"
    global_ = "global"  # trailing underscore: `global` is a keyword


class StructureKind(StrEnum):
    unstructured = "unstructured"
    channel = "channel"


class ChannelReduce(StrEnum):
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


class SparsityConfig(StrictModel):
    """`sparsity:` section: how many prunable weights to remove and how to spread them."""

    target: float = Field(default=0.0, ge=0.0, lt=1.0, description="fraction removed, not density")
    distribution: Distribution = Distribution.erk
    exclude: list[str] = Field(default_factory=list, description="globs of parameter names kept dense")
    structure: Structure = Field(
        default=StructureKind.unstructured, description="unstructured | channel | N:M (e.g. 2:4)"
    )
    channel_reduce: ChannelReduce = ChannelReduce.sum

    @field_validator("structure", mode="before")
    @classmethod
    def _parse_structure(cls, value: object) -> object:
        return parse_structure(value)

    @field_serializer("structure")
    def _structure_text(self, value: Structure) -> str:
        return value.value if isinstance(value, StructureKind) else str(value)

    allow_layer_collapse: bool = Field(
        default=False, description="train on even when a layer is left with no weights (see collapse.py)"
    )
    rules: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list,
        max_length=20,
        description='"module:callable"s that register dependency-graph rules (sparsity/rules.py)',
    )

    group_targets: dict[str, Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(
        default_factory=dict,
        description="with structure channel: the fraction of channels removed from every group of a "
        "kind (heads, ffn, channels), e.g. {heads: 0.5, ffn: 0.75}; kinds not named stay dense",
    )

    @field_validator("group_targets")
    @classmethod
    def _group_kinds(cls, targets: dict[str, float]) -> dict[str, float]:
        for kind in targets:
            if kind not in GROUP_KINDS:
                hint = did_you_mean(str(kind), list(GROUP_KINDS))
                raise ValueError(
                    f"unknown kind {shorten(repr(kind))}{hint}; choose from {', '.join(GROUP_KINDS)}"
                )
        return targets

    def at(self, target: float) -> SparsityConfig:
        """This section at another `target` (a schedule's step on the way to `self.target`):
        group targets shrink in proportion, so they are met exactly at `self.target`."""
        if target == self.target:
            return self.model_copy()
        scale = min(1.0, round(target / self.target, 9)) if self.target > 0 else 1.0
        groups = {k: f * scale for k, f in self.group_targets.items()}
        return self.model_copy(update={"target": target, "group_targets": groups})

    @field_validator("rules")
    @classmethod
    def _rule_specs(cls, specs: list[str]) -> list[str]:
        for spec in specs:
            if not re.match(RULE_SPEC, spec):
                raise ValueError(
                    f'expected "module:callable" (e.g. myrules:register), got {shorten(repr(spec))}'
                )
        return specs
