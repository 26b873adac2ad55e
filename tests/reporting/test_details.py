"""method_details rendering: records become tables (cut at MAX_DETAIL_ROWS), the rest one line each."""

from __future__ import annotations

from paiexport.reporting.details import MAX_DETAIL_ROWS, method_details
from paiexport.reporting.schema import RunReport


def _report(details: dict) -> RunReport:
    report = RunReport.model_construct()
    report.method, report.method_details = "rigl", details
    return report


def test_records_become_a_table_and_values_a_line() -> None:
    updates = [{"step": 50, "dropped": 12, "fraction": 0.123456}, {"step": 100, "dropped": 7}]
    (section,) = method_details(_report({"mask_updates": {"log": updates, "every": 50}}))
    assert section.title == "rigl: mask updates"
    caption, headers, rows = section.tables[0]
    assert caption == "log" and headers == ["step", "dropped", "fraction"]
    assert rows == [["50", "12", "0.1235"], ["100", "7", "-"]]
    assert section.lines == ["every: 50"]


def test_long_logs_are_cut_with_a_caption_saying_so() -> None:
    updates = [{"step": i} for i in range(MAX_DETAIL_ROWS + 5)]
    (section,) = method_details(_report({"mask_updates": {"log": updates}}))
    caption, _, rows = section.tables[0]
    assert len(rows) == MAX_DETAIL_ROWS
    assert caption == f"log (first {MAX_DETAIL_ROWS} of {MAX_DETAIL_ROWS + 5}; all in report.json)"


def test_per_layer_dicts_get_a_layer_column_and_unknown_keys_are_skipped() -> None:
    per_layer = {"fc1": {"kept": 10}, "fc2": {"kept": 4}}
    details = {"levels": {"targets": per_layer, "final": {"fc1": 0.5}}, "unlisted": {"x": 1}, "phases": []}
    (section,) = method_details(_report(details))
    assert section.title == "rigl: lottery-ticket levels"
    assert section.tables == [("targets", ["layer", "kept"], [["fc1", "10"], ["fc2", "4"]])]
    assert section.lines == ["final: fc1=0.5"]
