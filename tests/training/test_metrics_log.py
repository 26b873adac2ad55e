"""metrics.jsonl through MetricsLog: appended records, and a resume that neither duplicates nor
loses a line (records the file holds are replayed, not written again)."""

from __future__ import annotations

import json

from paiexport.training.metrics_log import MetricsLog


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_appended_one_json_line_each(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    log.write({"epoch": 1})
    log.write({"epoch": 2, "acc": 0.5})
    assert records(log.path) == [{"epoch": 1}, {"epoch": 2, "acc": 0.5}] and log.position == 2


def test_resume_replays_what_the_file_holds_and_cuts_later_lines_at_the_first_new_write(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "stale": true}\n')
    log = MetricsLog(path)
    log.resume(2)
    log.write({"epoch": 1})  # replayed: the file has it
    log.write({"epoch": 2})
    assert len(records(path)) == 3  # nothing cut before a new record comes
    log.write({"epoch": 3})
    assert records(path) == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}] and log.position == 3


def test_a_resume_that_writes_nothing_new_leaves_the_file(tmp_path):
    path = tmp_path / "m.jsonl"
    text = '{"epoch": 1}\n{"epoch": 2}\n'
    path.write_text(text)
    log = MetricsLog(path)
    log.resume(1)
    log.write({"epoch": 1})
    assert path.read_text() == text


def test_resume_without_a_file_and_seek(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    log.resume(5)
    assert (log.position, log.replay_until) == (0, 0)
    log.write({"a": 1})
    assert records(log.path) == [{"a": 1}]
    log.seek(4)
    log.write({"b": 2})
    assert log.position == 5 and records(log.path) == [{"a": 1}, {"b": 2}]
