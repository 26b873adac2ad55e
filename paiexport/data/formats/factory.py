"""`data.name: "package.module:callable"`: a function returning (train, test) torch Datasets of (x, y)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from paiexport.errors import UserError, first_line, shorten
from paiexport.importing import import_callable


def load(spec: str, search: list[Path]) -> tuple[Dataset, Dataset]:
    factory = import_callable(spec, search, "data.name")
    try:
        result: Any = factory()
    except Exception as exc:
        raise UserError(f"data.name: {shorten(spec)} raised {first_line(exc)}") from None
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise UserError(
            f"data.name: {shorten(spec)} must return (train, test) datasets, got {type(result).__name__}"
        )
    for part, name in zip(result, ("train", "test"), strict=True):
        if not hasattr(part, "__getitem__") or not hasattr(part, "__len__"):
            raise UserError(f"data.name: {shorten(spec)} returned a {name} set that is not a Dataset")
        if len(part) == 0:
            raise UserError(f"data.name: {shorten(spec)} returned an empty {name} set")
    return result[0], result[1]
