"""A SparseML recipe resolved against a model (SparseMLPlan): groups, schedules, LR, epochs, notes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from paiexport.errors import UserError
from paiexport.sparseml.convert import convert_file
from paiexport.sparseml.load import load_sparseml
from paiexport.sparseml.lr_schedule import lr_at, lr_trace
from paiexport.sparseml.modifiers import (
    parse_modifiers,
)
from paiexport.sparseml.schedule import pruned_count, total_epochs

DATA = Path(__file__).parents[1] / "fixtures" / "sparseml"
# resnet20's prunable weights (paiexport.models), in model order
NAMES = [
    "conv1.weight",
    *[f"blocks.{b}.conv{c}.weight" for b in range(9) for c in (1, 2)],
    "blocks.3.shortcut.0.weight",
    "blocks.6.shortcut.0.weight",
    "fc.weight",
]


def test_unsupported_modifier_names_it_and_the_file() -> None:
    path = DATA / "unsupported_mfac.yaml"
    with pytest.raises(UserError) as err:
        convert_file(path, NAMES)
    assert str(err.value).startswith(
        f"{path}: pruning_modifiers[0]: unsupported SparseML modifier MFACPruningModifier"
    )


def test_gmp_groups_follow_cubic_and_linear_schedules() -> None:
    plan = convert_file(DATA / "gmp_groups.yaml", NAMES)
    cubic, linear = plan.pruning
    assert cubic.params == ["conv1.weight", "fc.weight"]
    assert linear.params == [f"blocks.{b}.conv{c}.weight" for b in range(3) for c in (1, 2)]
    assert plan.dense_params == [n for n in NAMES if n not in cubic.params + linear.params]
    assert cubic.update_epochs(steps_per_epoch=4) == [1.0 + 0.5 * k for k in range(13)]
    # s = 0.05 + 0.65 * (1 - (1 - p)^3), p = (e - 1) / 6, at update points
    assert cubic.sparsity_at(2.5, 4) == pytest.approx(0.05 + 0.65 * (1 - 0.75**3))  # 0.42578125
    assert cubic.sparsity_at(4.0, 4) == pytest.approx(0.61875)
    assert cubic.sparsity_at(4.4, 4) == cubic.sparsity_at(4.0, 4)  # held between updates
    assert linear.sparsity_at(4.0, 4) == pytest.approx(0.45)
    assert cubic.sparsity_at(0.75, 4) == 0.0  # no mask before start_epoch
    assert (cubic.sparsity_at(7.0, 4), linear.sparsity_at(7.0, 4)) == (0.7, 0.85)
    assert cubic.sparsity_at(9.9, 4) == 0.7
    # to the weight: conv1 432 and fc 640 weights at 70%, a 2304-weight block conv at 85%
    assert [pruned_count(n, 0.7) for n in (432, 640)] == [302, 448]
    assert pruned_count(2304, linear.sparsity_at(7.0, 4)) == 1958
    assert plan.epochs == 10


def test_update_epochs_keep_sparsemls_step_grid() -> None:
    plan = convert_file(DATA / "gmp_groups.yaml", NAMES)
    # 3 steps per epoch: 0.5 epochs is no whole step; SparseML updates at the next step
    assert plan.pruning[0].update_epochs(3)[:4] == pytest.approx([1.0, 1.6667, 2.3333, 3.0], abs=1e-4)


def test_global_magnitude_one_target_and_cosine_lr() -> None:
    plan = convert_file(DATA / "global_eval.yaml", NAMES)
    (group,) = plan.pruning
    assert group.kind == "global" and len(group.params) == 18 and "conv1.weight" not in group.params
    assert (group.final_sparsity, group.sparsity_at(5.0, 4), plan.epochs) == (0.9, 0.9, 7)
    assert pruned_count(18 * 2304, group.sparsity_at(5.0, 4)) == 37325
    # SetLR 0.01 from epoch 0; cosine 0.01 -> 0.001 over epochs 1..5; then held
    cosine = [0.0045 * (math.cos(math.pi * (e - 1) / 4) + 1) + 0.001 for e in (1.0, 3.0, 3.5)]
    expected = {0: 0.01, 3: 0.01, 4: cosine[0], 12: cosine[1], 14: cosine[2], 20: 0.001, 27: 0.001}
    trace = lr_trace(plan.lr_segments, base_lr=0.5, steps=28, steps_per_epoch=4)
    assert {s: trace[s] for s in expected} == pytest.approx(expected)
    assert cosine[1] == pytest.approx(0.0055)


def test_markdown_recipe_with_steplr_and_quantization() -> None:
    plan = convert_file(DATA / "resnet20.pruned_quant.md", NAMES)
    assert plan.epochs == 8 and plan.quantize
    assert any("not quantization-aware" in note for note in plan.notes)
    assert plan.pruning[0].params == NAMES and plan.dense_params == []
    # StepLR every 2 epochs (8 steps at 4 steps/epoch), gamma 0.5, from init_lr 0.1
    expected = {0: 0.1, 7: 0.1, 8: 0.05, 15: 0.05, 16: 0.025, 31: 0.0125}
    assert {s: plan.lr_at(s, 4, base_lr=1.0) for s in expected} == pytest.approx(expected)


def test_constant_pruning_with_multisteplr() -> None:
    plan = convert_file(DATA / "constant_multistep.yaml", NAMES)
    (group,) = plan.pruning
    assert group.kind == "constant" and group.params == NAMES and group.sparsity_at(3.0, 4) is None
    assert [(w.start_epoch, w.weight_decay) for w in plan.weight_decay] == [(3.0, 0.0)]
    # milestones 2 and 4.5 epochs: steps 8 and 18 at 4 steps/epoch, gamma 0.2
    trace = lr_trace(plan.lr_segments, 1.0, 24, 4)
    assert trace == pytest.approx([0.1] * 8 + [0.02] * 10 + [0.004] * 6)
    # 3 steps/epoch: 4.5 epochs = 13.5 steps, which Python's round (as SparseML) makes 14
    assert lr_at(plan.lr_segments, 1.0, 13, 3) == pytest.approx(0.02)
    assert lr_at(plan.lr_segments, 1.0, 14, 3) == pytest.approx(0.004)


def test_total_epochs_without_epoch_range(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "modifiers:\n"
        "  - !SetLearningRateModifier {learning_rate: 0.1, start_epoch: 2.0}\n"
        "  - !GMPruningModifier {params: [fc.weight], init_sparsity: 0.0, final_sparsity: 0.5,\n"
        "                        start_epoch: 0.0, end_epoch: 6.5, update_frequency: 2.0}\n"
    )
    plan = convert_file(path, NAMES)
    assert plan.epochs == 7  # ceil of the last end, as SparseML's max_epochs
    assert plan.pruning[0].update_epochs(1) == [0.0, 2.0, 4.0, 6.0, 7.0]
    assert total_epochs(parse_modifiers(load_sparseml(DATA / "constant_multistep.yaml"))) == 6
