"""Typed SparseML modifiers: unknown fields named, SparseML's defaults kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from paiexport.errors import UserError
from paiexport.sparseml.load import load_sparseml
from paiexport.sparseml.lr_schedule import lr_trace
from paiexport.sparseml.modifiers import (
    LearningRateFunctionModifier,
    SetLearningRateModifier,
    parse_modifiers,
)

DATA = Path(__file__).parents[1] / "fixtures" / "sparseml"


def test_unknown_field_and_bad_eval_name_the_modifier(tmp_path: Path) -> None:
    text = (DATA / "gmp_groups.yaml").read_text()
    bad = tmp_path / "typo.yaml"
    bad.write_text(text.replace("inter_func: linear", "interp_func: linear"))
    with pytest.raises(
        UserError, match=r"typo.yaml: pruning_modifiers\[1\] MagnitudePruningModifier.interp_func: unknown"
    ):
        parse_modifiers(load_sparseml(bad))
    bad.write_text(text.replace("final_sparsity: 0.7", "final_sparsity: eval(__import__('os'))"))
    with pytest.raises(
        UserError, match=r"typo.yaml: pruning_modifiers\[0\] GMPruningModifier.final_sparsity: eval"
    ):
        load_sparseml(bad)


def test_set_modifiers_ignore_end_epoch_like_sparseml() -> None:
    set_lr = SetLearningRateModifier(learning_rate=0.3, start_epoch=1.0, end_epoch=2.0)
    fn = LearningRateFunctionModifier(
        lr_func="linear", init_lr=0.1, final_lr=0.0, start_epoch=0.0, end_epoch=4.0
    )
    assert set_lr.end_epoch == -1.0
    # the function runs every step; SetLR (never ending, so last in order) wins only at epoch 1
    trace = lr_trace([set_lr, fn], base_lr=1.0, steps=4, steps_per_epoch=1)
    assert trace == pytest.approx([0.1, 0.3, 0.05, 0.025])
