"""`data.name: "package.module:callable"`: a function returning (train, test) torch Datasets of (x, y)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from paiexport.errors import UserError, shorten
from paiexport.importing import import_callable, user_code


def load(spec: str, search: list[Path]) -> tuple[Dataset, Dataset]:
    factory = import_callable(spec, search, "data.name")
    with user_code(f"data.name: {shorten(spec)}"):
        result: Any = factory()
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise UserError(
            f"data.name: {shorten(spec)} must return (train, test) datasets, got {type(result).__name__}"
        )
    for part, name in zip(result, ("train", "test"), strict=True):
        if not hasattr(part, "__getitem__") or not hasattr(part, "__len__"):
            raise UserError(f"data.name: {shorten(spec)} returned a {name} set that is not a Dataset")
        with user_code(f"data.name: {shorten(spec)}: len() of the {name} set"):
            size = len(part)
        if size == 0:
            raise UserError(f"data.name: {shorten(spec)} returned an empty {name} set")
    return result[0], result[1]
