"""StrictModel, the base of every config section: unknown keys and bools for numbers are errors."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field, ValidationError

from paiexport.config import BOOL_FOR_NUMBER, StrictModel


class Section(StrictModel):
    count: int = 1
    bounded: Annotated[int, Field(ge=0)] = 0
    rate: float | None = None
    sizes: list[int] = Field(default_factory=list)
    flag: bool = False
    either: int | bool = 0
    name: str = "x"


def error_of(**fields: object) -> dict:
    with pytest.raises(ValidationError) as caught:
        Section(**fields)
    (error,) = caught.value.errors()
    return error


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("count", True, "true"),
        ("bounded", False, "false"),
        ("rate", True, "true"),
        ("sizes", [1, True], "[1, true]"),
    ],
)
def test_a_bool_for_a_number_is_refused_naming_the_field(field, value, shown):
    error = error_of(**{field: value})
    assert error["type"] == BOOL_FOR_NUMBER
    assert error["msg"] == f"{field}: expected a number, got {shown}"


def test_bools_where_a_bool_is_allowed_and_numbers_pass():
    section = Section(count=3, bounded=2, rate=0.5, sizes=[1, 2], flag=True, either=True, name="True")
    assert (section.count, section.rate, section.sizes, section.flag, section.either) == (
        3,
        0.5,
        [1, 2],
        True,
        True,
    )


def test_unknown_keys_are_errors():
    assert error_of(cuont=3)["type"] == "extra_forbidden"


def test_values_are_validated_on_assignment_too():
    section = Section()
    with pytest.raises(ValidationError):
        section.bounded = -1
    assert section.bounded == 0
