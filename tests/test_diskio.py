"""Filesystem primitives of run folders: temporary names, their cleanup, a rename that never
replaces, and telling a full disk from other write errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from paiexport import diskio
from paiexport.diskio import out_of_space, remove_temporary_files, rename_noreplace
from paiexport.paths import temporary


def test_temporary_is_a_hidden_sibling_named_after_this_process():
    assert temporary(Path("run/model.onnx")) == Path(f"run/.model.onnx.tmp-{os.getpid()}")


def test_only_temporary_files_of_killed_writes_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    leftovers = [tmp_path / ".m.onnx.tmp-123", tmp_path / "sub" / ".resume.pt.tmp-9"]
    kept = [tmp_path / ".x.tmp-abc", tmp_path / "m.onnx.tmp-1", tmp_path / "model.onnx"]
    for path in leftovers + kept:
        path.write_text("x")
    (tmp_path / ".d.tmp-5").mkdir()  # a folder, not a write
    outside = tmp_path.parent / f"{tmp_path.name}-target"
    outside.write_text("not ours")
    (tmp_path / ".l.tmp-7").symlink_to(outside)
    remove_temporary_files(tmp_path)
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in kept) and (tmp_path / ".d.tmp-5").is_dir()
    assert (tmp_path / ".l.tmp-7").is_symlink() and outside.read_text() == "not ours"


def test_rename_noreplace_moves_but_never_replaces(tmp_path):
    src, dst = tmp_path / "staged", tmp_path / "run"
    src.mkdir()
    (src / "f").write_text("new")
    rename_noreplace(src, dst)
    assert (dst / "f").read_text() == "new" and not src.exists()
    other = tmp_path / "other"
    other.mkdir()
    for existing in (dst, tmp_path / "empty"):
        existing.mkdir(exist_ok=True)
        with pytest.raises(FileExistsError):
            rename_noreplace(other, existing)
        assert other.is_dir()
    assert (dst / "f").read_text() == "new"


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


def test_out_of_space_by_errno_anywhere_in_the_chain(tmp_path):
    assert out_of_space(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path)
    assert out_of_space(_chained(RuntimeError("write failed"), OSError(errno.ENOSPC, "full")), tmp_path)
    assert not out_of_space(OSError(errno.EACCES, "Permission denied"), tmp_path)
    assert not out_of_space(ValueError("bad"), tmp_path)


def test_an_errno_less_write_error_is_a_full_disk_only_with_almost_no_room(tmp_path, monkeypatch):
    torch_style = RuntimeError("PytorchStreamWriter failed writing file data/0")
    monkeypatch.setattr(diskio, "_free_bytes", lambda folder: 10 << 30)
    assert not out_of_space(torch_style, tmp_path)
    monkeypatch.setattr(diskio, "_free_bytes", lambda folder: 4096)
    assert out_of_space(torch_style, tmp_path)
    assert not out_of_space(ValueError("not a write error"), tmp_path)  # room is not even asked


def test_a_cyclic_exception_chain_ends(tmp_path):
    a, b = RuntimeError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert out_of_space(a, tmp_path) is False
