"""Run folders are staged in a hidden sibling and published atomically; what killed runs left
is recovered. The names of every file and folder involved come from `paiexport.paths`."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from paiexport.diskio import out_of_space, remove_temporary_files, rename_noreplace
from paiexport.errors import DiskFull, UserError
from paiexport.out_path import check_out_path, short
from paiexport.paths import (
    LEGACY_RUN_FILES,
    MARKER_TEXT,
    RUN_MARKER,
    RunPaths,
    replaced,
    replaced_folder,
    staged,
    staging_folder,
)


def is_run_folder(path: Path) -> bool:
    """A folder paiexport wrote: it has the marker, or (older runs) report.json and recipe.yaml."""
    return RunPaths(path).marker.is_file() or all((path / f).is_file() for f in LEGACY_RUN_FILES)


def check_replaceable(final: Path) -> None:
    """--force replaces a paiexport run folder or an empty folder, never anything else."""
    if final.is_symlink() or not final.is_dir():
        raise UserError(f"--out {short(final)}: not a folder; --force replaces only run folders")
    if not is_run_folder(final) and any(final.iterdir()):
        raise UserError(
            f"--out {short(final)}: not a paiexport run folder (no {RUN_MARKER}); "
            "--force replaces only run folders and empty folders"
        )


def check_writable(final: Path, force: bool) -> None:
    """Fail before any work when the output is unusable, exists without --force, or is no run."""
    check_out_path(final)
    resolved, cwd = final.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise UserError(f"output folder {final} is the current folder or contains it; choose another --out")
    if not (final.exists() or final.is_symlink()):
        return
    if final.is_dir() and not force:
        raise UserError(f"--out {short(final)} exists; pass --force to replace it")
    check_replaceable(final)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Serialises staging, cleanup and publishing of the runs in `folder` (flock on the folder)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staged_by_live_run(staging: Path, pid: int) -> bool:
    """Its marker is locked by the run that writes it (a reused PID does not fool this)."""
    try:
        fd = os.open(RunPaths(staging).marker, os.O_RDONLY)
    except FileNotFoundError:  # killed before the marker was written, or an older version
        return _alive(pid)
    except OSError:
        return True  # unreadable: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def recover_interrupted(folder: Path) -> list[str]:
    """Remove staging folders of dead runs and finish swaps cut short by a kill: the old run
    is restored where the new one never arrived, else dropped. Returns one line per action."""
    if not folder.is_dir():
        return []
    done = []
    with folder_lock(folder):
        for path in sorted(folder.iterdir()):
            found = staged(path.name)
            if found and path.is_dir() and not staged_by_live_run(path, found[1]):
                if RunPaths(path).resume_state.is_file():
                    continue  # resumable: `run --resume` continues it, a published run drops it
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"removed {path.name} (left by an interrupted run)")
        # Newest first: with several, the most recent old run is the one restored.
        for path in sorted(folder.iterdir(), key=lambda p: p.lstat().st_mtime, reverse=True):
            found = replaced(path.name)
            if not found or not path.is_dir():
                continue
            final = folder / found[0]
            if final.exists() or final.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"removed {path.name} (an interrupted run had already replaced it)")
            else:
                path.rename(final)
                done.append(f"restored {final.name} from {path.name} (a replacement was interrupted)")
    return done


def prepare_output(final: Path, force: bool, note: Callable[[str], None] = lambda line: None) -> None:
    """Everything `run` checks before any work; `note` gets one line per leftover cleaned up."""
    check_out_path(final)
    for line in recover_interrupted(final.parent):
        note(line)
    check_writable(final, force)


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p that returns the folders it created, deepest first."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out: cannot create {short(folder)} ({exc.strerror})") from None
    return missing


def _publish(staging: Path, final: Path, force: bool) -> None:
    """Move the complete run into place; replace only what --force may replace, never silently."""
    previous = None
    appeared = f"--out {short(final)} appeared while this run worked; pass --force to replace it"
    with folder_lock(final.parent):
        if final.exists() or final.is_symlink():
            if not force:
                raise UserError(appeared)
            check_replaceable(final)
            previous = replaced_folder(final, secrets.token_hex(4))
            final.rename(previous)  # a kill from here on is undone by recover_interrupted
        try:
            rename_noreplace(staging, final)
        except FileExistsError:  # someone else's folder appeared in the last instant
            if previous is not None:
                previous.rename(final)
            raise UserError(appeared) from None
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _stage(final: Path, resume_from: Path | None) -> tuple[Path, int]:
    """The staging folder (new, or the interrupted run's) and its marker, locked for this run."""
    with folder_lock(final.parent):  # cleanup never sees a staging folder without its lock
        staging = resume_from or staging_folder(final, secrets.token_hex(4))
        if resume_from is None:
            staging.mkdir()
        elif not staging.is_dir() or staged_by_live_run(staging, staged(staging.name)[1]):
            raise UserError(f"--resume: {short(staging)} is in use by a running paiexport")
        marker = os.open(RunPaths(staging).marker, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(marker, fcntl.LOCK_EX)  # held until published: marks this run as alive
    return staging, marker


def _keeps(exc: BaseException, staging: Path, resuming: bool) -> bool:
    """A failed run with a checkpoint keeps it for `run --resume` when it was interrupted, ran out
    of space, or was itself a resume (a failed resume never loses its checkpoint)."""
    kept_for = isinstance(exc, (KeyboardInterrupt, DiskFull)) or resuming
    return kept_for and RunPaths(staging).resume_state.is_file()


def _disk_full(exc: BaseException, final: Path, staging: Path) -> BaseException:
    """`exc`, or the one-line DiskFull it stands for (exit 1)."""
    if not isinstance(exc, Exception) or not out_of_space(exc, staging):
        return exc
    kept = RunPaths(staging).resume_state.is_file()
    then = "the training checkpoint is kept: free space, then add --resume" if kept else "nothing was written"
    return DiskFull(f"--out {short(final)}: no space left on the device; {then}")


@contextmanager
def staged_run_dir(final: Path, force: bool, resume_from: Path | None = None) -> Iterator[RunPaths]:
    """Write into a hidden sibling folder and move it into place only on success.

    A failed or interrupted run leaves no half-written output (nor parent folders it made),
    an existing run is replaced (with --force) only once the new one is complete, and a
    folder that appeared meanwhile is never replaced without --force. `resume_from`: the
    staging folder of an interrupted run to continue in; an interrupted run (Ctrl-C, SIGTERM)
    that wrote a resume file leaves its staging folder for `run --resume`, and so does a
    failed resume. A full disk is one line (DiskFull), whatever write found it.
    """
    prepare_output(final, force)
    created = _make_parents(final.parent)
    try:
        staging, marker = _stage(final, resume_from)
        keep = False
        try:
            os.write(marker, MARKER_TEXT.encode())
            yield RunPaths(staging)
            remove_temporary_files(staging)  # what killed writes left is no part of the run
            _publish(staging, final, force)
        except BaseException as exc:
            failure = _disk_full(exc, final, staging)
            keep = _keeps(failure, staging, resume_from is not None)
            if failure is exc:
                raise
            raise failure from None
        finally:
            os.close(marker)
            if not keep:
                shutil.rmtree(staging, ignore_errors=True)  # gone already when published
    except BaseException:
        for folder in created:  # deepest first; a folder someone else filled stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
