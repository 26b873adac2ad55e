"""Datasets: the bundled three, on-disk formats and user factories, as seeded train/val/test splits.

Array datasets (bundled, IDX, CIFAR, npz) are held as tensors and batched by indexing (the fast
path); image folders and factory datasets stream through a DataLoader (`splits.DatasetSplit`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from paiexport.data import bundled, streamed
from paiexport.data.config import BUNDLED, AugmentConfig, DataConfig, DatasetName, FileFormat, MeanStd
from paiexport.data.formats import cifar, idx, imagefolder, npz
from paiexport.data.formats import factory as dataset_factory
from paiexport.data.splits import DatasetSplit, DataSplits, Split
from paiexport.data.transforms import channel_stats, make_augment, normalize
from paiexport.errors import UserError
from paiexport.inputs import several
from paiexport.tasks import Task, make_task

__all__ = ["DataConfig", "DataSplits", "DatasetName", "DatasetSplit", "Split", "load_data", "load_dataset"]

FIXED_CLASSES = {
    FileFormat.mnist: 10,
    FileFormat.fashion_mnist: 10,
    FileFormat.cifar10: 10,
    FileFormat.cifar100: 100,
}


def load_data(
    name: DatasetName,
    *,
    seed: int,
    val_fraction: float,
    synthetic_samples: int = 512,
    synthetic_shape: tuple[int, ...] = (1, 40),
) -> DataSplits:
    """Load a bundled dataset; the train/val split (and digits' test split) follow `seed`."""
    if name is DatasetName.digits:
        arrays = bundled.digits(seed)
    elif name is DatasetName.mnist1d:
        arrays = bundled.mnist1d()
    else:
        arrays = bundled.synthetic(seed, synthetic_samples, synthetic_shape)
    return from_arrays(arrays, seed=seed, val_fraction=val_fraction)


def load_dataset(
    cfg: DataConfig, *, seed: int, folders: list[Path] = (), task: Task | None = None
) -> DataSplits:
    """The dataset `cfg` names, split, normalized and augmented as it says, its targets checked by
    `task` (classification when None): a target that does not fit the task is a UserError.

    Relative `data.path`s and factory modules are looked up in `folders` (the recipe's) first.
    """
    task = task or make_task()
    if cfg.name in BUNDLED:
        raw = load_data(DatasetName(cfg.name), seed=seed, val_fraction=cfg.val_fraction)
        return _finish(_retarget(raw, task, f"data.name {cfg.name}"), cfg, seed)
    if cfg.name not in {f.value for f in FileFormat}:
        train, test = dataset_factory.load(cfg.name, list(folders))
        return _finish(streamed.splits(train, test, cfg, seed, task=task), cfg, seed)
    fmt, path = FileFormat(cfg.name), _resolve(cfg.path or "", list(folders))
    if fmt is FileFormat.imagefolder:
        train, test, classes = imagefolder.load(path, cfg.image_size, cfg.grayscale)
        data = streamed.splits(train, test, cfg, seed, len(classes))
        return _finish(_retarget(data, task, f"data.path {path}"), cfg, seed)
    count = cfg.num_classes or FIXED_CLASSES.get(fmt)
    if fmt is FileFormat.npz and not is_classification(task):
        arrays = npz.load(path, labels=False, targets_are_inputs=task.targets_are_inputs)
        return _finish(_task_arrays(arrays, cfg, seed, task, str(path)), cfg, seed)
    if fmt in (FileFormat.mnist, FileFormat.fashion_mnist):
        arrays = idx.load(path, count)
    elif fmt is FileFormat.npz:
        arrays = npz.load(path, count)
    else:
        arrays = cifar.load(path, hundred=fmt is FileFormat.cifar100, num_classes=count)
    data = from_arrays(arrays, seed=seed, val_fraction=cfg.val_fraction, num_classes=count)
    return _finish(_retarget(data, task, f"data.path {path}"), cfg, seed)


def is_classification(task: Task) -> bool:
    return task.name == "classification"


def _retarget(data: DataSplits, task: Task, where: str) -> DataSplits:
    """Class-labelled data (bundled, IDX, CIFAR, image folders) for `task`: classification keeps it
    as it is; another task checks the labels as its targets (regression refuses them)."""
    if is_classification(task):
        return replace(data, task=task)
    task.targets(torch.zeros(1, dtype=torch.int64), where)  # int64 class labels: does the task read them?
    return replace(data, task=task)


def _task_arrays(
    arrays: tuple[np.ndarray, ...], cfg: DataConfig, seed: int, task: Task, where: str
) -> DataSplits:
    """npz arrays for a task other than classification: targets as the task reads them."""
    x, y, x_test, y_test = arrays
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = round(cfg.val_fraction * len(y))
    val, train = order[:n_val], order[n_val:]
    if len(train) == 0:
        raise UserError(f"data.val_fraction: {cfg.val_fraction} leaves no training samples")
    checked = task.targets(torch.from_numpy(np.ascontiguousarray(y)), f"{where}: y_train")
    test_y = task.targets(torch.from_numpy(np.ascontiguousarray(y_test)), f"{where}: y_test")
    ys = {"y_train": checked[train], "y_val": checked[val], "y_test": test_y}
    task_fit(task, ys["y_train"])
    width = task.output_size(ys["y_train"], ys["y_test"], cfg.num_classes)
    return DataSplits(
        train=Split(_inputs(x[train]), ys["y_train"]),
        val=Split(_inputs(x[val]), ys["y_val"]),
        test=Split(_inputs(x_test), ys["y_test"]),
        input_shape=tuple(x.shape[1:]),
        num_classes=width,
        task=task,
    )


def task_fit(task: Task, train_y: torch.Tensor) -> None:
    """Statistics a task takes from the training targets (regression's standardization)."""
    fit = getattr(task, "fit", None)
    if callable(fit):
        fit(train_y)


def _inputs(a: np.ndarray) -> torch.Tensor:
    """Signed integer inputs (token ids) stay integer, as int64; everything else is float32."""
    return _i64(a) if a.dtype.kind == "i" else _f32(a)


def _resolve(text: str, folders: list[Path]) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute():
        for base in [*folders, Path.cwd()]:
            if (base / path).exists():
                return base / path
    if not path.exists():
        raise UserError(f"data.path: {text} not found")
    return path


def from_arrays(
    arrays: tuple[np.ndarray, ...], *, seed: int, val_fraction: float, num_classes: int | None = None
) -> DataSplits:
    x, y, x_test, y_test = arrays
    found = int(max(y.max(initial=0), y_test.max(initial=0)) + 1)
    classes = num_classes or found
    low = int(min(y.min(initial=0), y_test.min(initial=0)))
    if low < 0 or found > classes:
        bad = low if low < 0 else found - 1
        raise UserError(f"data: label {bad} outside [0, {classes}); set data.num_classes or fix the labels")
    x_train, y_train, x_val, y_val = _split_off(x, y, val_fraction, seed)
    return DataSplits(
        train=Split(x_train, y_train),
        val=Split(x_val, y_val),
        test=Split(_f32(x_test), _i64(y_test)),
        input_shape=tuple(x.shape[1:]),
        num_classes=classes,
    )


def _finish(data: DataSplits, cfg: DataConfig, seed: int) -> DataSplits:
    """Normalization (every split) and augmentation (training batches only)."""
    if cfg.normalize != "none" or cfg.augment != AugmentConfig():
        _one_input(data, "data.normalize" if cfg.normalize != "none" else "data.augment")
    mean_std = _mean_std(cfg.normalize, data)
    augment = make_augment(cfg.augment, data.input_shape) if cfg.augment != AugmentConfig() else None
    if mean_std is None and augment is None:
        return data
    if isinstance(data.train, Split):

        def prepare(s: Split, train: bool = False) -> Split:
            x = s.x if mean_std is None else normalize(s.x, *mean_std)
            return Split(x, s.y, augment if train else None)

        parts = prepare(data.train, True), prepare(data.val), prepare(data.test)
    else:
        parts = streamed.with_transforms(data, mean_std, augment)
    mean, std = mean_std or (None, None)
    return DataSplits(*parts, data.input_shape, data.num_classes, mean, std, data.task)


def _one_input(data: DataSplits, field: str) -> None:
    """Normalization and augmentation act on one input (images, signals), not on several."""
    if several(data.train.head(1)):
        raise UserError(f"{field}: needs one input per sample; the samples have several (a tuple or dict)")


def _mean_std(spec: str | MeanStd, data: DataSplits) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if spec == "none":
        return None
    if isinstance(spec, MeanStd):
        channels = data.input_shape[0] if data.input_shape else 0
        if len(spec.mean) != channels:
            raise UserError(f"data.normalize: {len(spec.mean)} mean values for {channels} input channels")
        return tuple(spec.mean), tuple(spec.std)
    return channel_stats(x for x, _ in data.train.batches(1024))


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _i64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


def _split_off(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = round(fraction * len(y))
    val, train = order[:n_val], order[n_val:]
    if len(train) == 0:
        raise UserError(f"data.val_fraction: {fraction} leaves no training samples")
    return _f32(x[train]), _i64(y[train]), _f32(x[val]), _i64(y[val])
