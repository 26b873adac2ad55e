"""--out checked before any work: not in /proc, /sys or /dev, not below a file, names within the limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paiexport.errors import UserError
from paiexport.out_path import check_out_path, short

SIBLING_ROOM = len("..replaced--") + 10 + 8  # ".NAME.replaced-PID-TOKEN" must fit too


def test_short_keeps_both_ends_of_a_long_path():
    assert short(Path("a/b")) == "a/b"
    assert short(Path("a" * 5 + "b" * 10 + "c" * 5), limit=10) == "aaaaa…ccccc"


def test_a_new_folder_below_a_writable_one_passes(tmp_path):
    check_out_path(tmp_path / "new" / "run")
    check_out_path(tmp_path)  # an existing folder: --force decides later
    assert list(tmp_path.iterdir()) == []  # checking creates nothing


@pytest.mark.parametrize("root", ["/proc", "/sys", "/dev"])
def test_system_folders_are_refused(root):
    with pytest.raises(UserError, match=f"^--out {root}/run: inside {root}, which cannot hold run folders$"):
        check_out_path(Path(root) / "run")


def test_a_path_below_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=f"^--out {blocker}/a/run: {blocker} is a file, not a folder$"):
        check_out_path(blocker / "a" / "run")


def test_names_leave_room_for_the_staging_siblings(tmp_path):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    check_out_path(tmp_path / ("n" * (name_max - SIBLING_ROOM)))
    with pytest.raises(UserError, match=f"at most {name_max - SIBLING_ROOM} bytes for the run folder's name"):
        check_out_path(tmp_path / ("n" * (name_max - SIBLING_ROOM + 1)))
    with pytest.raises(UserError, match="name longer than the filesystem allows"):
        check_out_path(tmp_path / ("d" * (name_max + 1)) / "run")  # a folder to create, too


def test_a_symlink_loop_is_refused_in_one_line(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(UserError, match=r"^--out .*/a/run: cannot be resolved \("):
        check_out_path(tmp_path / "a" / "run")
