"""Splits of `Dataset`s (image folders, factories): seeded train/val split by index, per-sample transforms."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from paiexport.data.config import DataConfig
from paiexport.data.guard import Guarded
from paiexport.data.splits import Augment, DatasetSplit, DataSplits
from paiexport.data.transforms import normalize
from paiexport.errors import UserError, shorten
from paiexport.inputs import layout, tensors
from paiexport.tasks import Task, make_task


class Normalized(Dataset):
    """Applies the per-channel normalization to each sample as it is read."""

    def __init__(self, base: Dataset, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.base, self.mean, self.std = base, mean, std

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[index]
        return normalize(torch.as_tensor(x, dtype=torch.float32)[None], self.mean, self.std)[0], y


def splits(
    train: Dataset,
    test: Dataset,
    cfg: DataConfig,
    seed: int,
    num_classes: int | None = None,
    task: Task | None = None,
) -> DataSplits:
    """Seeded train/val split; without `num_classes` (a factory) the datasets are read through guards."""
    if num_classes is None:
        task = task or make_task()
        if task.name != "classification":
            return _task_splits(train, test, cfg, seed, task)
        return replace(_factory_splits(train, test, cfg, seed), task=task)
    try:
        first, _ = train[0]
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"data.name: reading the first training sample raised {type(exc).__name__}") from None
    return _split(train, test, cfg, seed, tuple(torch.as_tensor(first).shape), num_classes)


def _factory_splits(train: Dataset, test: Dataset, cfg: DataConfig, seed: int) -> DataSplits:
    """A factory's datasets behind guards: the first sample's shape and every label checked up front."""
    where = f"data.name: {shorten(cfg.name)}"
    guards = Guarded(train, f"{where}: train"), Guarded(test, f"{where}: test")
    shape = layout(guards[0][0][0])
    for guard in guards:
        guard.shape = shape
    labels = np.concatenate([guard.labels() for guard in guards])
    low, high = int(labels.min()), int(labels.max())
    classes = cfg.num_classes or high + 1
    if low < 0 or high >= classes:
        raise UserError(
            f"data: label {low if low < 0 else high} outside [0, {classes}); set data.num_classes"
        )
    counted = "from .targets" if any(guard.had_targets for guard in guards) else "from the labels"
    for guard in guards:
        guard.classes = classes
        guard.classes_from = "set by data.num_classes" if cfg.num_classes else f"counted {counted}"
    return _split(guards[0], guards[1], cfg, seed, first_shape(shape), classes)


def _task_splits(train: Dataset, test: Dataset, cfg: DataConfig, seed: int, task: Task) -> DataSplits:
    """A factory's datasets for a task other than classification: every target read once and
    checked by the task (its dtype and shape then hold for every sample)."""
    where = f"data.name: {shorten(cfg.name)}"
    guards = Guarded(train, f"{where}: train"), Guarded(test, f"{where}: test")
    first = guards[0].base_target(0)
    for guard in guards:
        guard.target = (first.dtype, tuple(first.shape))  # every sample's target, train and test
    shape = layout(guards[0][0][0])
    found = []
    for guard in guards:
        guard.shape = shape
        found.append(task.targets(guard.targets(), guard.where))
    fit = getattr(task, "fit", None)
    if callable(fit):
        fit(found[0])  # the whole training set's targets (validation samples included)
    width = task.output_size(found[0], found[1], cfg.num_classes)
    return replace(_split(guards[0], guards[1], cfg, seed, first_shape(shape), width), task=task)


def first_shape(shape: Any) -> tuple[int, ...]:
    """`DataSplits.input_shape` of a sample's `inputs.layout`: its (first) input's shape."""
    return tensors(shape)[0] if isinstance(shape, dict) or (shape and isinstance(shape[0], tuple)) else shape


def _split(
    train: Dataset, test: Dataset, cfg: DataConfig, seed: int, shape: tuple[int, ...], classes: int
) -> DataSplits:
    order = np.random.default_rng(seed).permutation(len(train))  # type: ignore[arg-type]
    n_val = round(cfg.val_fraction * len(order))
    if n_val == len(order):
        raise UserError(f"data.val_fraction: {cfg.val_fraction} leaves no training samples")
    workers = cfg.num_workers
    return DataSplits(
        train=DatasetSplit(Subset(train, order[n_val:].tolist()), workers),
        val=DatasetSplit(Subset(train, order[:n_val].tolist()), workers),
        test=DatasetSplit(test, workers),
        input_shape=shape,
        num_classes=int(classes),
    )


def with_transforms(
    data: DataSplits, mean_std: tuple[tuple[float, ...], tuple[float, ...]] | None, augment: Augment | None
) -> tuple[DatasetSplit, DatasetSplit, DatasetSplit]:
    def wrap(split: DatasetSplit, train: bool) -> DatasetSplit:
        base = split.dataset if mean_std is None else Normalized(split.dataset, *mean_std)
        return DatasetSplit(base, split.num_workers, augment if train else None)

    return wrap(data.train, True), wrap(data.val, False), wrap(data.test, False)  # type: ignore[arg-type]
