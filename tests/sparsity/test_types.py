"""The shared sparsity types: "N:M" parsed once into NMPattern, the typed `sparsity:` section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paiexport.sparsity.types import (
    Distribution,
    NMPattern,
    SparsityConfig,
    StructureKind,
    parse_structure,
)


def test_nm_text_becomes_a_pattern():
    assert parse_structure("2:4") == NMPattern(n=2, m=4)
    assert parse_structure(" 1 : 8 ") == NMPattern(n=1, m=8)
    assert str(NMPattern(n=2, m=4)) == "2:4"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4:2", "N:M needs 1 <= N < M, got 4:2"),
        ("0:4", "N:M needs 1 <= N < M, got 0:4"),
        ("2:x", "expected unstructured, channel or N:M such as 2:4, got '2:x'"),
        ("chanel", "expected unstructured, channel or N:M such as 2:4, got 'chanel'"),
        (124, 'write N:M in quotes, e.g. "2:4" (unquoted YAML reads it as the number 124)'),
    ],
)
def test_bad_structures_say_what_is_expected(value, message):
    with pytest.raises(ValueError) as caught:
        parse_structure(value)
    assert str(caught.value) == message


def test_kinds_and_other_types_pass_through_to_the_field():
    assert parse_structure("channel") == "channel" and parse_structure(True) is True
    with pytest.raises(ValidationError):
        NMPattern(n=4, m=4)


def test_the_section_types_its_structure_and_writes_it_back_as_text():
    nm = SparsityConfig(structure="2:4")
    assert nm.structure == NMPattern(n=2, m=4) and nm.model_dump()["structure"] == "2:4"
    channel = SparsityConfig(structure="channel")
    assert channel.structure is StructureKind.channel and channel.model_dump()["structure"] == "channel"
    assert SparsityConfig().structure is StructureKind.unstructured


def test_the_section_defaults_and_bounds():
    default = SparsityConfig()
    assert (default.target, default.distribution, default.exclude) == (0.0, Distribution.erk, [])
    assert SparsityConfig(distribution="global").distribution is Distribution.global_
    for target in (1.0, -0.1):
        with pytest.raises(ValidationError, match="target"):
            SparsityConfig(target=target)
    with pytest.raises(ValidationError, match="structure"):
        SparsityConfig(structure=124)
