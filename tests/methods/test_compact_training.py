"""Which recipes may train the physically smaller model: channel structure and static masks only."""

from __future__ import annotations

import pytest

from paiexport.methods.compact_training import check_compact_training
from paiexport.sparsity.types import NMPattern, StructureKind


@pytest.mark.parametrize("method", ["snip", "magnitude", "grasp", "synflow", "random"])
def test_static_criteria_with_channel_structure_may(method):
    check_compact_training(StructureKind.channel, method)


@pytest.mark.parametrize("structure", [StructureKind.unstructured, NMPattern(n=2, m=4)])
def test_other_structures_may_not(structure):
    with pytest.raises(ValueError, match=r"^train.compact: needs sparsity.structure: channel"):
        check_compact_training(structure, "snip")


@pytest.mark.parametrize("method", ["gmp", "lth", "rigl", "set", "snfs", "magnitude_after_training"])
def test_methods_that_change_their_masks_later_may_not(method):
    with pytest.raises(ValueError) as caught:
        check_compact_training(StructureKind.channel, method)
    assert str(caught.value) == (
        f"train.compact: needs static masks chosen once at initialization; {method} "
        "changes its masks during or after training"
    )
