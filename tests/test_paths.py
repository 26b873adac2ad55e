"""paths.py names every file of a run and nothing else: the names, checked by hand."""

from __future__ import annotations

import os
from pathlib import Path

from paiexport import paths
from paiexport.paths import RunPaths, level_phase
from paiexport.variant import Variant


def test_run_files_by_name() -> None:
    run = RunPaths(Path("/r/run"))
    assert run.recipe == Path("/r/run/recipe.yaml")
    assert run.best_checkpoint == Path("/r/run/checkpoints/best.pt")
    assert run.last_checkpoint == Path("/r/run/checkpoints/last.pt")
    assert run.resume_state == Path("/r/run/checkpoints/resume.pt")
    assert run.onnx(Variant.dense) == Path("/r/run/model.onnx")
    assert run.onnx(Variant.compact) == Path("/r/run/model.compact.onnx")


def test_lth_levels_have_their_own_checkpoint_folders() -> None:
    run = RunPaths(Path("/r/run"))
    assert level_phase(2) == "level2"
    assert run.phase(level_phase(2)).best == Path("/r/run/checkpoints/level2/best.pt")
    assert run.phase("finetune").chosen(best=False) == Path("/r/run/checkpoints/finetune/last.pt")


def test_the_run_holding_a_file_by_its_names() -> None:
    for file in ("model.pt", "checkpoints/best.pt", "checkpoints/level2/best.pt"):
        assert RunPaths.holding(Path("/r/run") / file).root == Path("/r/run"), file


def test_staging_and_replaced_names_round_trip() -> None:
    final = Path("/r/my.run")
    staging = paths.staging_folder(final, "ab12")
    assert staging == Path(f"/r/.my.run.partial-{os.getpid()}-ab12")
    assert paths.staged(staging.name) == ("my.run", os.getpid())
    assert paths.replaced(paths.replaced_folder(final, "ff").name) == ("my.run", os.getpid())
    assert paths.staged("my.run") is None and paths.replaced(staging.name) is None
    assert paths.staging_glob(Path("/r/a[1]")) == ".a[[]1].partial-*"


def test_temporary_names() -> None:
    tmp = paths.temporary(Path("/r/run/checkpoints/resume.pt"))
    assert tmp == Path(f"/r/run/checkpoints/.resume.pt.tmp-{os.getpid()}")
    assert paths.is_temporary(tmp.name) and paths.is_temporary(".x.tmp-1")
    assert not paths.is_temporary("resume.pt") and not paths.is_temporary(".x.tmp-")
