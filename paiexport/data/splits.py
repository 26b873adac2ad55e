"""Train/val/test splits: in-memory tensors (the fast path) or a streamed `Dataset`.

Both kinds answer `len`, `batches(batch_size, generator)` and `head(n)`; the training loop,
the methods and validation never need to know which one they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from paiexport.errors import UserError
from paiexport.inputs import Inputs, concat, map_inputs, stack, take, zeros_rows
from paiexport.tasks import Task, make_task

Batch = tuple[Inputs, torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class SplitLike(Protocol):
    x: Inputs
    y: torch.Tensor

    def __len__(self) -> int: ...
    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]: ...
    def head(self, n: int) -> Inputs: ...


@dataclass(frozen=True)
class Split:
    """Tensors held in memory: batches are cut by indexing, faster than a DataLoader on few cores.

    `x` is one tensor, or a tuple or dict of them (several model inputs), indexed alike."""

    x: Inputs
    y: torch.Tensor
    augment: Augment | None = None  # training-only randomness; applied when shuffling

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Yield (x, y) batches; shuffled (and augmented) when a generator is given, in order otherwise."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            if order is None:
                yield take(self.x, slice(start, start + batch_size)), self.y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                x = take(self.x, idx)
                yield (x if self.augment is None else self.augment(x, generator)), self.y[idx]

    def head(self, n: int) -> Inputs:
        return take(self.x, slice(None, n))


@dataclass(frozen=True)
class DatasetSplit:
    """A `Dataset` of (x, y) read through a DataLoader: samples are decoded as they are needed.

    The order comes from the same seeded `randperm` as `Split`, so runs stay deterministic
    whatever `num_workers` is.
    """

    dataset: Dataset
    num_workers: int = 0
    augment: Augment | None = None
    pin_memory: bool = field(default_factory=torch.cuda.is_available)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _loader(self, indices: list[list[int]]) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_sampler=indices,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=_collate,
        )

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        chunks = [order[s : s + batch_size].tolist() for s in range(0, n, batch_size)]
        for x, y in _unwrapped(self._loader(chunks)):
            if generator is not None and self.augment is not None:
                x = self.augment(x, generator)
            yield x, y

    def head(self, n: int) -> Inputs:
        return next(_unwrapped(self._loader([list(range(min(n, len(self))))])))[0]

    # Whole-split tensors, for validation and parity checks (test splits only, read once).
    @cached_property
    def _all(self) -> Batch:
        xs, ys = zip(*self.batches(256), strict=True)
        return concat(xs), torch.cat(ys)

    @property
    def x(self) -> Inputs:
        return self._all[0]

    @property
    def y(self) -> torch.Tensor:
        return self._all[1]


_WORKER = "Caught UserError in DataLoader worker"


def _unwrapped(loader: DataLoader) -> Iterator[Batch]:
    """The loader's batches; a worker's UserError is re-raised as its own one line.

    A DataLoader re-raises a worker's exception as the same type with the whole worker
    traceback as its message; the original message is that traceback's last line.
    """
    try:
        yield from loader
    except UserError as exc:
        text = str(exc)
        if not text.startswith(_WORKER):
            raise
        last = text.rstrip().splitlines()[-1]
        _, found, message = last.partition("UserError: ")
        raise UserError(message if found else "data: a DataLoader worker failed reading a sample") from None


def as_input(x: object) -> torch.Tensor:
    """A sample's input as a tensor: integers (token ids) as int64, anything else float32."""
    t = torch.as_tensor(x)
    integer = not (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool)
    return t.to(torch.int64 if integer and t.dtype != torch.uint8 else torch.float32)


def as_inputs(x: object) -> Inputs:
    """A sample's inputs: a dict (keyword arguments, string keys) or a tuple of arrays (positional
    arguments) is several, each through `as_input`; anything else is one (`as_input`)."""
    if isinstance(x, dict):
        if not x or not all(isinstance(k, str) and k.isidentifier() for k in x):
            raise ValueError("a dict of inputs needs names of forward arguments as keys")
        return {k: as_input(v) for k, v in x.items()}
    if isinstance(x, tuple) and x and all(isinstance(v, torch.Tensor | np.ndarray) for v in x):
        return tuple(as_input(v) for v in x)
    return as_input(x)


def _collate(samples: list[tuple[Inputs, int | torch.Tensor]]) -> Batch:
    xs, ys = zip(*samples, strict=True)
    inputs = stack([as_inputs(x) for x in xs])
    if all(isinstance(y, int) for y in ys):  # class indices
        return inputs, torch.as_tensor(ys, dtype=torch.int64)
    return inputs, torch.stack([torch.as_tensor(y) for y in ys])


@dataclass(frozen=True)
class DataSplits:
    train: SplitLike
    val: SplitLike
    test: SplitLike
    input_shape: tuple[int, ...]  # one sample, without the batch dimension (several: the first's)
    num_classes: int
    mean: tuple[float, ...] | None = None  # per-channel normalization applied to every split
    std: tuple[float, ...] | None = None
    task: Task = field(default_factory=make_task)  # what the targets are; every stage asks it

    def example(self, n: int = 2) -> Inputs:
        """`n` rows shaped and typed like the model's inputs, to trace or export it with: zeros
        for one float input (as always), else the first test samples (valid token ids and
        masks, where zeros may not be), repeated when the split has fewer."""
        first = self.test.head(n)
        if isinstance(first, torch.Tensor) and first.dtype.is_floating_point:
            return zeros_rows(first, n)
        return map_inputs(first, lambda t: t[torch.arange(n) % len(t)])
