"""Tolerances and comparison rules in `verify/rules`, and the places that judge with them."""

from __future__ import annotations

import numpy as np

from paiexport.reporting.gates import GatesConfig, evaluate_gates
from paiexport.reporting.schema import RunReport
from paiexport.verify import rules
from paiexport.verify.rules import (
    PARITY_BATCH,
    accuracies_match,
    accuracy_drop_points,
    over_limit_reason,
    parity_diff,
    within_drop_limit,
    within_parity,
)
from paiexport.verify.validate import accuracy_validation


def test_parity_looks_at_the_parity_batch_only() -> None:
    logits = np.zeros((PARITY_BATCH + 4, 3), dtype=np.float32)
    reference = logits.copy()
    reference[PARITY_BATCH:] = 5.0  # past the parity batch: not compared
    reference[7, 2] = 2e-4
    assert parity_diff(logits, reference) == np.float32(2e-4)
    assert not within_parity(parity_diff(logits, reference)) and within_parity(1e-4)


def test_accuracy_match_allows_one_flip_per_thousand_samples() -> None:
    # Accuracies as whole samples out of n (binary fractions, exact in float).
    assert accuracies_match(256 / 512, 257 / 512, 512)  # under 1000 samples: still one flip
    assert not accuracies_match(256 / 512, 258 / 512, 512)
    assert accuracies_match(1024 / 2048, 1026 / 2048, 2048)  # 2048 // 1000 = 2 flips
    assert not accuracies_match(1024 / 2048, 1027 / 2048, 2048)


def test_drop_at_the_limit_passes_despite_float_noise() -> None:
    drop = accuracy_drop_points(0.9, 0.89)
    assert drop != 1.0 and abs(drop - 1.0) < 1e-12  # 1.0000000000000009
    assert within_drop_limit(drop, 1.0) and not within_drop_limit(1.04, 1.0)
    assert over_limit_reason(1.04, 1.0) == "−1.04 pt > 1.0: not deployable"
    assert over_limit_reason(1.5, 1.0) == "−1.5 pt > 1.0: not deployable"


def test_validation_and_gate_agree_at_the_limit() -> None:
    """An int8 file exactly 1 pt below PyTorch: deployable, and the 1.0 gate passes."""
    check = accuracy_validation("int8", True, True, 0.0, True, 0.89, 0.9, False, parity_required=False)
    assert check.deployable and check.accuracy_drop == accuracy_drop_points(0.9, 0.89)
    report = {"accuracy": {"torch": 0.9, "onnx": {"int8": 0.89, "dense": 0.9}}}
    (gate,) = evaluate_gates(GatesConfig(max_accuracy_drop=1.0), RunReport.from_dict(report))
    assert gate.passed and gate.measured == accuracy_drop_points(0.9, 0.89)


def test_min_sparsity_tolerance_is_owned_by_rules(monkeypatch):
    from paiexport.reporting.gates import sparsity_gate

    assert rules.reaches_sparsity(899, 1000, 0.9) and not rules.reaches_sparsity(898, 1000, 0.9)
    assert rules.reaches_sparsity(900, 1000, 0.9)
    per_layer = {"a.weight": {"numel": 1000}}
    report = RunReport.model_validate({"sparsity": {"target": 0.9, "reached": 0.899, "per_layer": per_layer}})
    assert sparsity_gate(report, 0.9).passed
    monkeypatch.setattr(rules, "SPARSITY_SLACK_WEIGHTS", 0)
    assert not sparsity_gate(report, 0.9).passed
