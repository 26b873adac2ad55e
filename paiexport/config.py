"""Base class for every typed configuration section."""

from __future__ import annotations

import copy
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

BOOL_FOR_NUMBER = "bool_for_number"  # error type; ctx["field"] names the field in its section


def _numeric_without_bool(annotation: Any) -> bool:
    """int/float (maybe in a list or an Optional) that does not also allow a bool."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _numeric_without_bool(typing.get_args(annotation)[0])
    if origin in (list, tuple):
        return any(_numeric_without_bool(a) for a in typing.get_args(annotation) if a is not Ellipsis)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return bool not in args and any(_numeric_without_bool(a) for a in args)
    return annotation in (int, float)


class StrictModel(BaseModel):
    """Unknown keys are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        # YAML reads `seed: true` or `epochs: yes` as a bool, and pydantic's lax mode turns it
        # into 1: a typo would silently become a count. Numbers must be written as numbers.
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            values = value if isinstance(value, list) else [value]
            if field and any(isinstance(v, bool) for v in values) and _numeric_without_bool(field.annotation):
                raise PydanticCustomError(
                    BOOL_FOR_NUMBER,
                    "{field}: expected a number, got {value}",
                    {"field": name, "value": str(value).lower()[:60]},
                )
        return data


def without_defaults(data: dict[str, Any], defaults: dict[tuple[str, ...], object]) -> dict[str, Any]:
    """A copy of `data` without the fields (paths) that hold their value in `defaults`."""
    data = copy.deepcopy(data)
    for path, default in defaults.items():
        *parents, last = path
        node = data
        for part in parents:
            node = node.get(part, {})
        if node.get(last, default) == default:
            node.pop(last, None)
    return data
