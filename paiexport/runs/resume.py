"""Finding the interrupted run `run --resume` continues, and refusing one of another recipe."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from paiexport.errors import UserError
from paiexport.out_path import short
from paiexport.paths import RunPaths, staged, staging_glob
from paiexport.runs.staging import folder_lock, staged_by_live_run


def resumable_runs(final: Path) -> list[Path]:
    """Staging folders of interrupted runs of `final` that hold a resume file, newest first."""
    found = [p for p in final.parent.glob(staging_glob(final)) if staged(p.name)]
    found = [p for p in found if RunPaths(p).resume_state.is_file()]
    return sorted(found, key=lambda p: RunPaths(p).resume_state.stat().st_mtime, reverse=True)


def drop_resumable(final: Path) -> None:
    """A published run supersedes the interrupted ones of its folder (live runs are left alone)."""
    if not final.parent.is_dir():
        return
    with folder_lock(final.parent):  # the same lock and liveness test as the stale-staging cleanup
        for path in resumable_runs(final):
            if not staged_by_live_run(path, staged(path.name)[1]):
                shutil.rmtree(path, ignore_errors=True)


def first_difference(saved: Any, wanted: Any, prefix: str = "") -> str | None:
    """The first dotted field where two recipe dicts differ, or None when they are equal."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        for key in [*saved, *(k for k in wanted if k not in saved)]:
            found = first_difference(saved.get(key), wanted.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if saved == wanted else f"{prefix[:-1] or 'recipe'} is {saved!r} there, {wanted!r} here"


def resume_dir(out_dir: Path, recipe: dict[str, Any]) -> Path | None:
    """The newest interrupted run of `out_dir`; a UserError when it trained another recipe."""
    found = resumable_runs(out_dir)
    if not found:
        return None
    staged = RunPaths(found[0]).recipe
    saved = yaml.safe_load(staged.read_text()) if staged.is_file() else {}
    diff = first_difference(saved, recipe)
    if diff is not None:
        raise UserError(f"--resume: the interrupted run in {short(found[0])} used another recipe: {diff}")
    return found[0]


def resume_hint(out_dir: Path) -> str | None:
    """One line for a fresh run that leaves resumable state behind it."""
    if not resumable_runs(out_dir):
        return None
    return f"an interrupted run of {short(out_dir)} can be continued: add --resume (this run starts fresh)"
