"""TrainResult and its plain form for the resume file."""

from __future__ import annotations

import pytest

from paiexport.training.result import TrainResult


def test_plain_form_round_trips_and_is_a_copy():
    result = TrainResult(history=[{"epoch": 1, "loss": 0.5}], best_epoch=1, exported_epoch=1, seconds=2.5)
    plain = result.to_dict()
    assert plain == {
        "history": [{"epoch": 1, "loss": 0.5}],
        "best_epoch": 1,
        "exported_epoch": 1,
        "seconds": 2.5,
        "compact": None,
        "threads": 0,
    }
    plain["history"][0]["loss"] = 9.0
    assert result.history[0]["loss"] == 0.5
    assert TrainResult.from_dict(result.to_dict()) == result


def test_a_missing_or_unknown_field_is_named():
    plain = TrainResult().to_dict()
    del plain["threads"]
    with pytest.raises(ValueError, match=r"^result field 'threads' is missing$"):
        TrainResult.from_dict(plain)
    with pytest.raises(ValueError, match=r"^result field 'extra' is unknown$"):
        TrainResult.from_dict({**TrainResult().to_dict(), "extra": 1})
