"""--set strings become typed overrides; applying them copies, never parses."""

import pytest

from paiexport.cli.overrides import parse_override
from paiexport.errors import UserError
from paiexport.recipe import Override, apply_overrides


def test_overrides_are_typed_values():
    raw = {"train": {"epochs": 3}, "name": "x"}
    shared = [1, 2]
    done = apply_overrides(
        raw, [Override(("train", "epochs"), "4"), Override(("bench", "batch_sizes"), shared)]
    )
    assert done == {"train": {"epochs": "4"}, "name": "x", "bench": {"batch_sizes": [1, 2]}}  # no parsing
    done["bench"]["batch_sizes"].append(3)
    assert shared == [1, 2] and raw == {"train": {"epochs": 3}, "name": "x"}
    assert parse_override("bench.batch_sizes=[2, 4]") == Override(("bench", "batch_sizes"), [2, 4])
    assert parse_override("name=007") == Override(("name",), 7)  # YAML, in the CLI only
    with pytest.raises(UserError, match=r"--set train\.epochs: train is not a section"):
        apply_overrides({"train": 1}, [Override(("train", "epochs"), 1)])
