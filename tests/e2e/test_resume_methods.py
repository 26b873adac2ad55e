"""Resume after an interruption at a seeded random moment of training, in process, per method kind:
the interruption is raised from a metrics write (after an epoch's record, before its checkpoint,
or between phases), which leaves the staging folder as a SIGKILL there would."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml
from tiny import TINY_RECIPE
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.recipe import Recipe
from paiexport.runs.pipeline import run_recipe
from paiexport.runs.staging import recover_interrupted
from paiexport.training.metrics_log import MetricsLog

METHODS = {
    "snip": {"name": "snip"},
    "snfs": {"name": "snfs", "update_every": 2, "end_fraction": 1.0},
    "gmp": {"name": "gmp", "update_every": 2},
    "edge_popup": {"name": "edge_popup"},
    "magnitude_after_training": {"name": "magnitude_after_training", "finetune_epochs": 2},
}


class Killed(KeyboardInterrupt):
    """Stands in for SIGKILL: nothing after it runs, the staging folder stays."""


def recipe(method: str) -> Recipe:
    raw = yaml.safe_load(yaml.safe_dump(TINY_RECIPE))
    raw["method"], raw["train"]["epochs"] = METHODS[method], 3
    raw["sparsity"]["distribution"] = "uniform"
    raw["export"]["formats"], raw["bench"] = ["dense"], {"batch_sizes": [1], "warmup": 0, "iterations": 1}
    return Recipe.model_validate(raw)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def method_report(run: Path) -> dict:
    """What the method itself reports (mask updates, phases, ...) and the training summary."""
    report = json.loads((run / "report.json").read_text())
    keys = ("mask_updates", "levels", "phases", "sparse_selection")
    training = {k: v for k, v in report["training"].items() if k not in ("seconds", "final")}
    final = {k: v for k, v in report["training"]["final"].items() if k != "seconds"}
    return {"training": training, "final": final, **{k: report.get(k) for k in keys}}


def interrupt_at(monkeypatch: pytest.MonkeyPatch, line: int) -> None:
    write = MetricsLog.write

    def killing(self: MetricsLog, record: dict) -> None:
        write(self, record)
        if self.position == line:
            raise Killed

    monkeypatch.setattr(MetricsLog, "write", killing)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_interrupted_then_resumed_run_gives_identical_files(method, tmp_path, monkeypatch):
    r = recipe(method)
    run_recipe(r, tmp_path / "ref")
    lines = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    line = random.Random(f"kill-{method}").randrange(2, len(lines))  # after the first checkpoint
    with monkeypatch.context() as m:
        interrupt_at(m, line)
        with pytest.raises(Killed):
            run_recipe(r, tmp_path / "run")
    assert [p.name for p in tmp_path.glob(".run.partial-*/checkpoints/resume.pt")] == ["resume.pt"]
    run_recipe(r, tmp_path / "run", resume=True)
    for name in ("masks.pt", "model.onnx"):
        assert sha(tmp_path / "run" / name) == sha(tmp_path / "ref" / name), name
    # Every line once, in order (only the elapsed seconds differ).
    assert records(tmp_path / "run") == records(tmp_path / "ref")
    assert method_report(tmp_path / "run") == method_report(tmp_path / "ref")
    assert not list(tmp_path.glob(".run.partial-*"))


def interrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, r: Recipe) -> Path:
    """An interrupted run of `r` into tmp_path/run; returns its (kept) staging folder."""
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        with pytest.raises(Killed):
            run_recipe(r, tmp_path / "run")
    (staging,) = tmp_path.glob(".run.partial-*")
    return staging


def test_stale_staging_cleanup_keeps_resumable_runs_and_a_published_run_drops_them(tmp_path, monkeypatch):
    staging = interrupted_run(tmp_path, monkeypatch, recipe("snip"))
    dead = tmp_path / ".run.partial-999999-abcd"  # a dead run without a resume file
    dead.mkdir()
    assert recover_interrupted(tmp_path) == [f"removed {dead.name} (left by an interrupted run)"]
    assert staging.is_dir()
    result = CliRunner().invoke(
        app, ["run", str(write(tmp_path, recipe("snip"))), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    assert "can be continued: add --resume" in result.output
    assert not staging.exists()  # the fresh, published run superseded it


def test_resume_of_another_recipe_is_refused_naming_the_field(tmp_path, monkeypatch):
    staging = interrupted_run(tmp_path, monkeypatch, recipe("snip"))
    path = write(tmp_path, recipe("snip"))
    args = ["run", str(path), "--out", str(tmp_path / "run"), "--resume", "--set", "train.epochs=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "train.epochs is 3 there, 2 here" in result.output
    assert staging.is_dir()  # still resumable with the right recipe


def write(tmp_path: Path, r: Recipe) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(r.to_dict()))
    return path


def test_a_kill_after_training_resumes_without_training_again(tmp_path, monkeypatch):
    r = recipe("snfs")
    run_recipe(r, tmp_path / "ref")
    with monkeypatch.context() as m:
        m.setattr("paiexport.runs.ship.export_variants", lambda *a: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            run_recipe(r, tmp_path / "run")

    def no_training(*args: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr("paiexport.training.checkpoint.Phase.restore", no_training)
    monkeypatch.setattr("paiexport.training.checkpoint.Phase.epoch_end", no_training)
    run_recipe(r, tmp_path / "run", resume=True)
    for name in ("masks.pt", "model.onnx"):
        assert sha(tmp_path / "run" / name) == sha(tmp_path / "ref" / name), name
    assert method_report(tmp_path / "run") == method_report(tmp_path / "ref")
