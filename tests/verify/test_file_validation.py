"""FileValidation: one file's checks in the task's terms (classification keeps its key names)."""

from __future__ import annotations

import pytest

from paiexport.reporting.quality import FileCheck
from paiexport.verify.file_validation import FileValidation, accuracy_validation


def result(**fields) -> FileValidation:
    """A float file that passes every check; `fields` change some."""
    base = dict(variant="dense", checker=True, loads=True, max_abs_diff=0.0, parity=True)
    base.update(accuracy=0.9, accuracy_torch=0.9, accuracy_match=True, chance_level=0.3)
    return accuracy_validation(**{**base, **fields})


def test_a_file_that_fails_the_checker_is_broken_by_the_checker_alone():
    bad = result(checker=False, loads=False, parity=False, accuracy_match=False, accuracy=0.0)
    assert bad.broken_checks == ["checker"] and not bad.passed and not bad.deployable
    assert bad.reason == "broken: checker"
    unloadable = result(loads=False, parity=False, accuracy_match=False, accuracy=0.0)
    assert unloadable.broken_checks == ["load"] and unloadable.reason == "broken: load"


def test_a_float_file_matching_pytorch_is_deployable():
    good = result()
    assert good.broken_checks == [] and good.deployable and good.reason == "matches PyTorch"
    row = good.to_dict()
    assert (row["passed"], row["broken_checks"], row["deployable"]) == (True, [], True)
    assert row["reason"] == "matches PyTorch" and row["variant"] == "dense"


def test_a_lossy_file_within_the_limit_is_deployable_with_its_drop_in_the_reason():
    lossy = result(variant="int8", parity=False, accuracy=0.895, accuracy_match=False, parity_required=False)
    assert lossy.broken_checks == [] and lossy.deployable
    assert lossy.accuracy_drop == pytest.approx(0.5)
    assert lossy.reason == "-0.5 pt vs PyTorch (limit 1.0)"
    assert lossy.within_limit(0.5) and not lossy.within_limit(0.4)


def test_lossy_file_over_the_limit_is_not_deployable_but_not_broken():
    check = accuracy_validation("int8", True, True, 0.08, False, 0.888, 0.9, False, parity_required=False)
    assert check.passed and check.broken_checks == [] and not check.deployable
    assert check.reason == "−1.2 pt > 1.0: not deployable"
    float_file = accuracy_validation("dense", True, True, 0.08, False, 0.888, 0.9, False)
    assert float_file.broken_checks == ["parity", "accuracy"] and not float_file.deployable
    garbage = accuracy_validation("int8", True, True, 0.0, True, 0.10, 0.1, True, chance_level=0.1285)
    assert garbage.broken_checks == ["chance_level"]


def regression(**fields) -> FileValidation:
    """A regression file (R², higher is better) that passes every check; `fields` change some."""
    base = dict(variant="int8", checker=True, loads=True, max_abs_diff=0.3, parity=False)
    base.update(
        metrics={"r2": 0.58, "mae": 40.0}, metrics_torch={"r2": 0.60, "mae": 39.0}, metric_match=False
    )
    base.update(parity_required=False, baseline=-0.01, max_metric_drop=0.03)
    base.update(task="regression", primary="r2", drop_scale=1.0)
    return FileValidation(**{**base, **fields})


def test_a_lossy_regression_file_is_judged_by_its_r2_drop_in_r2_units():
    ok = regression()
    assert ok.metric_drop == pytest.approx(0.02) and ok.deployable  # 0.60 - 0.58 <= 0.03
    assert ok.reason == "-0.02 r2 vs PyTorch (limit 0.03)"
    over = regression(max_metric_drop=0.01)
    assert over.passed and not over.deployable
    assert over.reason == "−0.02 r2 > 0.01: not deployable"


def test_a_relative_drop_is_a_fraction_of_pytorchs_perplexity():
    lm = dict(primary="perplexity", higher_is_better=False, task="language_model", relative_drop=True)
    lm.update(metrics_torch={"perplexity": 5.0}, baseline=30.0, max_metric_drop=0.05)
    ppl = regression(metrics={"perplexity": 5.25}, **lm)
    assert ppl.metric_drop == pytest.approx(0.05) and ppl.deployable  # 5.25 / 5.0 - 1, at the limit
    assert ppl.reason == "-0.05 × perplexity vs PyTorch (limit 0.05)"
    worse = regression(metrics={"perplexity": 5.5}, **lm)
    assert not worse.deployable and worse.reason == "−0.1 × perplexity > 0.05: not deployable"
    assert regression(metrics={"perplexity": 31.0}, **lm).broken_checks == ["baseline"]


def test_other_tasks_name_their_checks_metric_and_baseline():
    bad = regression(parity_required=True, metrics={"r2": -0.5})
    assert bad.broken_checks == ["parity", "metric", "baseline"]


def test_the_report_entry_keeps_classifications_keys_and_adds_the_metrics():
    entry = FileCheck(**accuracy_validation("dense", True, True, 0.0, True, 0.9, 0.9, True).to_dict())
    assert (entry.accuracy, entry.accuracy_torch, entry.chance_level) == (0.9, 0.9, 0.0)
    assert entry.metrics == {"accuracy": 0.9} and entry.metric == 0.9
    other = FileCheck(**regression().to_dict())
    assert other.accuracy is None and other.metric == 0.58 and other.metrics_torch["mae"] == 39.0
    assert other.baseline == -0.01 and other.max_metric_drop == 0.03
