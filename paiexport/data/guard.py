"""A factory's dataset read through a guard: each sample checked, every error of its code one line.

`Guarded` wraps the user's `Dataset`. Whatever its `__getitem__` raises (`sys.exit()` included)
and every sample that is not a numeric `x` of the first sample's shape with an integer class
`y` in `[0, classes)` becomes a `UserError` naming `data.name`, the split and the index. In a
DataLoader worker that error arrives wrapped in a traceback; `splits.DatasetSplit` unwraps it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from paiexport.data.splits import as_inputs
from paiexport.errors import UserError, shorten
from paiexport.importing import user_code
from paiexport.inputs import Inputs, layout


def class_index(y: Any) -> int:
    """`y` as a class index; ValueError unless it is an integer (a float never is: 3.0 is refused,
    nothing is cast)."""
    if isinstance(y, str | bytes | float | bool):
        raise ValueError(type(y).__name__)
    dtype = getattr(y, "dtype", None)
    if dtype is not None and (np.dtype(str(dtype).removeprefix("torch.")).kind not in "iu"):
        raise ValueError(str(dtype))
    try:
        label = int(y)
        integral = bool(label == y)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(type(y).__name__) from exc
    if not integral:
        raise ValueError("not an integer")
    return label


class Guarded(Dataset):
    """The user's `base` dataset; `where` ("data.name: mod:fn: train") starts every error.

    `shape` and `classes` are filled in once known (the first sample, the label range); until
    then samples are checked without them.
    """

    def __init__(self, base: Dataset, where: str) -> None:
        self.base, self.where = base, where
        self.shape: Any = None  # `inputs.layout` of the first sample's x
        self.classes: int | None = None
        self.classes_from = ""  # what set `classes`, said when a label falls outside
        self.had_targets = False  # `labels` came from `.targets`
        self.target: tuple[torch.dtype, tuple[int, ...]] | None = None  # a non-classification task's

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with user_code(f"{self.where} sample {index}"):
            sample = self.base[index]
        return self.check(sample, index)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch: through the user's own `__getitems__` when it has one, else sample by sample."""
        batched = getattr(self.base, "__getitems__", None)
        if not callable(batched):
            return [self[i] for i in indices]
        with user_code(f"{self.where} samples {shorten(indices, 40)}"):
            samples = list(batched(list(indices)))
        if len(samples) != len(indices):
            raise UserError(f"{self.where}: __getitems__ gave {len(samples)} samples for {len(indices)}")
        return [self.check(s, i) for s, i in zip(samples, indices, strict=True)]

    def check(self, sample: Any, index: int) -> tuple[Inputs, int | torch.Tensor]:
        """`sample` as (x, y): x float32 (int64 for integer inputs such as token ids), or a tuple
        or dict of those (several inputs), y an int class index or, for another task, a tensor
        of the first target's dtype and shape; or the one line that says what is wrong with it."""
        at = f"{self.where} sample {index}"
        if not isinstance(sample, tuple | list) or len(sample) != 2:
            raise UserError(f"{at} is a {type(sample).__name__}, not an (x, y) pair")
        try:
            x = as_inputs(sample[0])
        except Exception:
            raise UserError(
                f"{at}: x is a {type(sample[0]).__name__}, not an array of numbers "
                "(nor a tuple or a dict of them, keyed by forward argument names)"
            ) from None
        if self.shape is not None and layout(x) != self.shape:
            found, first = shorten(layout(x), 120), shorten(self.shape, 120)
            raise UserError(f"{at} has shape {found}, the first sample {first}")
        if self.target is not None:
            return x, self._target(sample[1], at)
        shape = tuple(getattr(sample[1], "shape", ()))
        if len(shape) > 0 and shape != (1,):
            raise UserError(
                f"{at} has a target of shape {shape}: task.name classification needs one integer "
                "class index per sample (set task.name for another task)"
            )
        try:
            y = class_index(sample[1])
        except ValueError:
            text = shorten(repr(sample[1]), 40)
            raise UserError(
                f"{at} has label {text}: task.name classification needs integer class indices "
                "(nothing is cast; set task.name for another task)"
            ) from None
        if self.classes is not None and not 0 <= y < self.classes:
            raise UserError(f"{at} has label {y} outside [0, {self.classes}) ({self.classes_from})")
        return x, y

    def _target(self, y: Any, at: str) -> torch.Tensor:
        """A target of a task other than classification: the first target's dtype and shape."""
        try:
            t = torch.as_tensor(y)
        except Exception:
            raise UserError(f"{at}: y is a {type(y).__name__}, not an array of numbers") from None
        dtype, shape = self.target
        if t.dtype != dtype or tuple(t.shape) != shape:
            found = f"{str(t.dtype).removeprefix('torch.')}{tuple(t.shape)}"
            raise UserError(
                f"{at} has target {found}, the first sample {str(dtype).removeprefix('torch.')}{shape}"
            )
        return t

    def targets(self) -> torch.Tensor:
        """Every target of a task other than classification (`target` set), read once; each
        sample's x is checked too."""
        return torch.stack([self[i][1] for i in range(len(self))])  # type: ignore[misc]

    def base_target(self, index: int) -> torch.Tensor:
        with user_code(f"{self.where} sample {index}"):
            sample = self.base[index]
        if not isinstance(sample, tuple | list) or len(sample) != 2:
            raise UserError(f"{self.where} sample {index} is a {type(sample).__name__}, not an (x, y) pair")
        try:
            return torch.as_tensor(sample[1])
        except Exception:
            raise UserError(f"{self.where} sample {index}: y is not an array of numbers") from None

    def labels(self) -> np.ndarray:
        """Every label: from `.targets` when the dataset has them, else by reading each sample once."""
        with user_code(f"{self.where}: reading .targets"):
            targets = getattr(self.base, "targets", None)
        if targets is None:
            return np.asarray([self[i][1] for i in range(len(self))], dtype=np.int64)
        self.had_targets = True
        try:
            array = np.asarray(targets)
        except Exception:
            array = np.asarray(None)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise UserError(f"{self.where}: .targets must hold one integer class index per sample")
        return array.astype(np.int64)
