"""report.json's task, metrics and accuracy sections, and reading the primary metric back."""

from __future__ import annotations

import pytest

from paiexport.reporting.schema import RunReport


def test_a_report_without_task_reads_accuracy_as_its_primary_metric():
    old = RunReport.from_dict({"accuracy": {"torch": 0.9, "onnx": {"dense": 0.9, "int8": 0.88}}})
    assert old.primary == ("accuracy", True)
    assert old.torch_metric == 0.9 and old.onnx_metric() == {"dense": 0.9, "int8": 0.88}


def test_a_task_report_reads_its_primary_metric_from_metrics():
    raw = {
        "task": {
            "name": "language_model",
            "primary": "perplexity",
            "higher_is_better": False,
            "baseline": 40.0,
        },
        "metrics": {
            "torch": {"perplexity": 5.0, "token_accuracy": 0.4},
            "onnx": {"dense": {"perplexity": 5.0}},
        },
    }
    report = RunReport.from_dict(raw)
    assert report.primary == ("perplexity", False) and report.task.baseline == 40.0
    assert report.torch_metric == 5.0 and report.onnx_metric() == {"dense": 5.0}
    assert report.accuracy is None


def test_unknown_keys_in_a_section_are_refused_naming_it():
    from paiexport.errors import UserError

    with pytest.raises(UserError, match=r"task\.extra"):
        RunReport.from_dict({"task": {"name": "x", "primary": "m", "higher_is_better": True, "extra": 1}})
