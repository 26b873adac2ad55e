"""TrainResult and its plain form for the resume file."""

from __future__ import annotations

import pytest

from paiexport.training.metrics_log import EpochRecord
from paiexport.training.result import TrainResult

ROW = {
    "epoch": 1,
    "step": 8,
    "train_loss": 0.5,
    "train_acc": 0.75,
    "val_loss": 0.6,
    "val_acc": 0.7,
    "lr": 0.1,
    "seconds": 2.0,
}


def test_plain_form_round_trips_and_is_a_copy():
    history = [EpochRecord.from_dict(ROW)]
    result = TrainResult(history=history, best_epoch=1, exported_epoch=1, seconds=2.5)
    plain = result.to_dict()
    assert plain == {
        "history": [ROW],
        "best_epoch": 1,
        "exported_epoch": 1,
        "seconds": 2.5,
        "compact": None,
        "threads": 0,
    }
    plain["history"][0]["train_loss"] = 9.0
    assert result.history[0].train_loss == 0.5
    assert TrainResult.from_dict(result.to_dict()) == result


def test_a_missing_or_unknown_field_is_named():
    plain = TrainResult().to_dict()
    del plain["threads"]
    with pytest.raises(ValueError, match=r"^result field 'threads' is missing$"):
        TrainResult.from_dict(plain)
    with pytest.raises(ValueError, match=r"^result field 'extra' is unknown$"):
        TrainResult.from_dict({**TrainResult().to_dict(), "extra": 1})
