"""Checks every dataset format shares: integer labels in range, two classes, non-empty splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paiexport.data.formats.checks import MAX_CLASSES, labels, not_empty, show, two_classes
from paiexport.errors import UserError


def test_show_escapes_control_characters_and_cuts_the_middle():
    assert show(Path("data/train\nx.png")) == "data/train\\nx.png"
    assert show("a" * 5 + "b" * 10 + "c" * 5, limit=10) == "aaaaa…ccccc"


def test_labels_become_int64():
    out = labels("f", np.array([0, 2, 1], np.uint8), 3)
    assert out.dtype == np.int64 and out.tolist() == [0, 2, 1]
    assert labels("f", np.array([]), None).dtype == np.int64  # `[]` reads as float64


@pytest.mark.parametrize(
    ("values", "num_classes", "message"),
    [
        (np.array([3.7, 1.0]), None, "f must be a 1-D array of integer labels, got float64(2,)"),
        (np.array([[0], [1]]), None, "f must be a 1-D array of integer labels, got int64(2, 1)"),
        (np.array([0, -1]), 10, "f: label -1 outside [0, 10)"),
        (np.array([0, 10]), 10, "f: label 10 outside [0, 10)"),
        (np.array([0, 2**63 + 5], np.uint64), None, f"f: label {2**63 + 5} outside [0, {MAX_CLASSES})"),
    ],
)
def test_bad_labels_are_named_with_the_limit(values, num_classes, message):
    with pytest.raises(UserError) as caught:
        labels("f", values, num_classes)
    assert str(caught.value).startswith(message)


def test_a_classifier_needs_two_classes():
    two_classes("f", np.array([0, 1, 0]))
    refusals = {
        "only class 1": (np.array([1, 1]), None),
        "only class dog": (np.array([1, 1]), ["cat", "dog"]),
        "no class": (np.array([], np.int64), None),
    }
    for only, (values, names) in refusals.items():
        with pytest.raises(UserError) as caught:
            two_classes("f", values, names)
        assert str(caught.value) == f"f: the training split holds {only}; a classifier needs at least 2"


def test_splits_must_not_be_empty():
    not_empty("f", 1, "test")
    with pytest.raises(UserError, match=r"^f holds no samples; the test split cannot be empty$"):
        not_empty("f", 0, "test")
