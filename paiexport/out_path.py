"""The user's --out, checked before any work: a folder this run can create and publish."""

from __future__ import annotations

import os
from pathlib import Path

from paiexport.errors import UserError
from paiexport.paths import SIBLING_ROOM

_FORBIDDEN_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def short(path: Path, limit: int = 80) -> str:
    """A path shortened for a one-line message."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 2 :]}"


def check_out_path(final: Path) -> None:
    """--out must be a folder this run can create: not in /proc or /sys, not below a file,
    every name within the filesystem's limit (checked before any work)."""
    try:
        resolved = final.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise UserError(f"--out {short(final)}: cannot be resolved ({exc})") from None
    for root in _FORBIDDEN_ROOTS:
        if resolved == root or root in resolved.parents:
            raise UserError(f"--out {short(final)}: inside {root}, which cannot hold run folders")
    existing = resolved
    while not os.path.exists(existing):  # False, not an error, for a too long name
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--out {short(final)}: {short(existing)} is a file, not a folder")
    name_max = os.pathconf(existing, "PC_NAME_MAX")
    new_names = [*resolved.relative_to(existing).parts, resolved.name + "x" * SIBLING_ROOM]
    too_long = max(len(os.fsencode(n)) for n in new_names) > name_max
    if too_long or len(os.fsencode(str(resolved))) + SIBLING_ROOM >= os.pathconf(existing, "PC_PATH_MAX"):
        limit = f"at most {name_max - SIBLING_ROOM} bytes for the run folder's name"
        raise UserError(f"--out {short(final)}: name longer than the filesystem allows ({limit})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--out {short(final)}: {short(existing)} is not writable")
