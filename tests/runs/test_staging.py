"""Publishing run folders: concurrent runs, --force, leftovers of killed runs, bad --out."""

import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.paths import MARKER_TEXT, RUN_MARKER
from paiexport.runs.staging import staged_run_dir

runner = CliRunner()
DEAD_PID = 999999999  # above any pid_max


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _fake_run(folder: Path, marker: bool = True, note: str = "old") -> Path:
    """A finished run folder: the marker, or (before the marker existed) report.json + recipe.yaml."""
    folder.mkdir(parents=True)
    if marker:
        (folder / RUN_MARKER).write_text(MARKER_TEXT)
    else:
        (folder / "recipe.yaml").write_text("name: old\n")
    (folder / "report.json").write_text(f'{{"note": "{note}"}}')
    return folder


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _publish_in_thread(final: Path, name: str, barrier: threading.Barrier, results: dict) -> None:
    try:
        with staged_run_dir(final, force=False) as paths:
            (paths.root / "who").write_text(name)
            barrier.wait(timeout=10)  # both runs are staged before either publishes
        results[name] = "published"
    except UserError as exc:
        results[name] = str(exc)


def test_concurrent_runs_publish_exactly_once(tmp_path):
    final, barrier, results = tmp_path / "run", threading.Barrier(2), {}
    threads = [
        threading.Thread(target=_publish_in_thread, args=(final, n, barrier, results)) for n in ("a", "b")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results.values())[1] == "published", results
    loser = next(v for v in results.values() if v != "published")
    assert str(final) in loser and "--force" in loser
    winner = next(n for n, v in results.items() if v == "published")
    assert (final / "who").read_text() == winner
    assert _siblings(tmp_path) == ["run"]  # the loser's staging folder is gone


@pytest.mark.parametrize("user_file", [False, True])
def test_a_folder_that_appears_meanwhile_is_never_replaced(tmp_path, user_file):
    final = tmp_path / "run"
    appeared = pytest.raises(UserError, match="appeared while this run worked")
    with appeared, staged_run_dir(final, force=False) as paths:
        (paths.root / "report.json").write_text("{}")
        final.mkdir()  # e.g. another tool, or an empty folder made by hand
        if user_file:
            (final / "notes.txt").write_text("mine")
    assert _siblings(final) == (["notes.txt"] if user_file else [])
    assert _siblings(tmp_path) == ["run"]


def test_force_refuses_a_folder_that_is_not_a_run(tmp_path, write_recipe, tiny_recipe_dict):
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "thesis.tex").write_text("years of work")
    result = invoke("run", str(write_recipe(tiny_recipe_dict)), "--out", str(project), "--force")
    assert result.exit_code == 2
    assert "--out" in result.output and "not a paiexport run folder" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (project / "thesis.tex").read_text() == "years of work"
    assert _siblings(tmp_path) == ["my_project", "recipe.yaml"]  # refused before any work


@pytest.mark.parametrize("kind", ["marker", "legacy", "empty"])
def test_force_replaces_runs_and_empty_folders(tmp_path, kind):
    final = tmp_path / "run"
    if kind == "empty":
        final.mkdir()
    else:
        _fake_run(final, marker=kind == "marker")
    with staged_run_dir(final, force=True) as paths:
        (paths.root / "report.json").write_text('{"note": "new"}')
    assert _siblings(final) == [RUN_MARKER, "report.json"]
    assert (final / RUN_MARKER).read_text() == MARKER_TEXT
    assert (final / "report.json").read_text() == '{"note": "new"}'
    assert _siblings(tmp_path) == ["run"]


def test_staging_folders_of_dead_runs_are_removed(tmp_path):
    dead = tmp_path / f".run.partial-{DEAD_PID}"  # older layout: no marker, the PID decides
    dead.mkdir()
    # A live PID (this process) but nobody holds the marker's lock: the PID was reused.
    reused = _fake_run(tmp_path / f".run.partial-{os.getpid()}-0badcafe")
    staged, release, results = threading.Event(), threading.Event(), {}

    def live_run() -> None:
        with staged_run_dir(tmp_path / "live", force=False):
            staged.set()
            release.wait(timeout=30)
        results["live"] = "published"

    thread = threading.Thread(target=live_run)
    thread.start()
    assert staged.wait(timeout=30)
    with staged_run_dir(tmp_path / "other", force=False):
        pass
    left = _siblings(tmp_path)
    assert dead.name not in left and reused.name not in left
    assert [n for n in left if n.startswith(".live.partial-")]  # its run is alive: kept
    release.set()
    thread.join(timeout=30)
    assert results == {"live": "published"} and _siblings(tmp_path) == ["live", "other"]


def test_a_swap_cut_short_is_recovered_at_the_next_start(tmp_path, write_recipe, tiny_recipe_dict):
    recipe = str(write_recipe(tiny_recipe_dict))
    # Killed after moving the old run aside, before the new one arrived: the old one comes back.
    _fake_run(tmp_path / f".run.replaced-{DEAD_PID}", marker=False)
    result = invoke("run", recipe, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "pass --force" in result.output
    assert "restored run" in result.output
    assert (tmp_path / "run" / "report.json").read_text() == '{"note": "old"}'
    # Killed after the new run arrived, before the old one was deleted: the new one stays.
    _fake_run(tmp_path / f".run.replaced-{DEAD_PID}-12ab", note="older")
    result = invoke("run", recipe, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert (tmp_path / "run" / "report.json").read_text() == '{"note": "old"}'
    assert _siblings(tmp_path) == ["recipe.yaml", "run"]


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        ("/proc/paiexport-run", "inside /proc"),
        ("/sys/paiexport-run", "inside /sys"),
        ("{tmp}/notes.txt/run", "is a file, not a folder"),
        ("{tmp}/" + "n" * 250, "longer than the filesystem allows"),
        ("{tmp}/" + "d" * 300 + "/run", "longer than the filesystem allows"),
    ],
)
def test_unusable_out_is_one_line_exit_2(tmp_path, write_recipe, tiny_recipe_dict, out, needle):
    recipe = write_recipe(tiny_recipe_dict)
    (tmp_path / "notes.txt").write_text("x")
    result = invoke("run", str(recipe), "--out", out.format(tmp=tmp_path))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --out") and needle in result.output
    assert len(result.output.strip().splitlines()) == 1 and len(result.output) < 300
    assert _siblings(tmp_path) == ["notes.txt", "recipe.yaml"]


def test_a_failed_run_leaves_no_parent_folders_it_created(tmp_path):
    (tmp_path / "kept").mkdir()
    failed = pytest.raises(RuntimeError, match="training failed")
    with failed, staged_run_dir(tmp_path / "kept" / "a" / "b" / "run", force=False) as paths:
        (paths.root / "metrics.jsonl").write_text("{}")
        raise RuntimeError("training failed")
    assert _siblings(tmp_path) == ["kept"] and _siblings(tmp_path / "kept") == []


def test_sweep_out_is_checked_too(tmp_path, write_recipe, tiny_recipe_dict):
    (tmp_path / "notes.txt").write_text("x")
    recipe = str(write_recipe(tiny_recipe_dict))
    for out in ("/proc/paiexport-sweep", str(tmp_path / "notes.txt" / "sweep")):
        result = invoke("sweep", recipe, "--grid", "method.name=random", "--out", out)
        assert result.exit_code == 2 and result.output.startswith("error: --out"), result.output
