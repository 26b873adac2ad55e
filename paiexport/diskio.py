"""Filesystem primitives of run folders: a rename that never replaces, the temporary files of
atomic writes, and a write that failed because the disk is full."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from paiexport.paths import TEMPORARY_GLOB, is_temporary

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_ALMOST_FULL = 1 << 20  # bytes: torch reports a full disk without an errno; this little room left says it


def remove_temporary_files(root: Path) -> None:
    """Delete what killed atomic writes left under `root` (never part of a finished run)."""
    for path in root.rglob(TEMPORARY_GLOB):
        if is_temporary(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing an (empty) folder."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_noreplace = -100, 1
        if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: the filesystem lacks the flag
            raise (FileExistsError if code == errno.EEXIST else OSError)(code, os.strerror(code), str(dst))
    # Fallback: paiexport processes are serialised by the folder lock; only others can race here.
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))
    os.rename(src, dst)


def _free_bytes(folder: Path) -> int | None:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def out_of_space(exc: BaseException, folder: Path) -> bool:
    """Whether `exc` means the disk holding `folder` is full: ENOSPC or EDQUOT anywhere in its
    chain, or a write error without an errno (torch.save to a path) with almost no room left."""
    seen: set[int] = set()
    chain: BaseException | None = exc
    errno_less = False
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, OSError) and chain.errno in _NO_SPACE:
            return True
        errno_less = errno_less or isinstance(chain, RuntimeError)
        chain = chain.__cause__ or chain.__context__
    free = _free_bytes(folder) if errno_less else None
    return free is not None and free < _ALMOST_FULL
