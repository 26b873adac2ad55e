"""Importing a user's "package.module:callable": the recipe's folder first, every failure one line
naming the field, Ctrl-C left alone."""

from __future__ import annotations

import sys

import pytest

from paiexport.errors import UserError
from paiexport.importing import import_callable, register, user_code

MODULE = """
VALUE = 4

def build(n=3):
    return n
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A folder of user modules with names no other test imports (sys.modules is cleaned up)."""
    names = {f"{stem}_{tmp_path.name}" for stem in ("good", "raises", "exits", "ctrlc")}
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    tag = tmp_path.name
    (tmp_path / f"good_{tag}.py").write_text(MODULE)
    (tmp_path / f"raises_{tag}.py").write_text("1 / 0\n")
    (tmp_path / f"exits_{tag}.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / f"ctrlc_{tag}.py").write_text("raise KeyboardInterrupt\n")
    yield tmp_path
    for name in names:
        sys.modules.pop(name, None)


def test_the_callable_is_found_in_the_recipes_folder_and_sys_path_is_restored(folder):
    before = list(sys.path)
    build = import_callable(f"good_{folder.name}:build", [folder], "model.name")
    assert build() == 3 and sys.path == before


def test_failures_are_one_line_naming_the_field(folder):
    tag = folder.name
    cases = {
        f"nosuch_{tag}:build": f"model.name: module 'nosuch_{tag}' not found (searched the recipe's folder",
        f"good_{tag}:nope": f"model.name: module 'good_{tag}' has no attribute 'nope'",
        f"good_{tag}:VALUE": f"model.name: good_{tag}:VALUE is a int, not callable",
        f"raises_{tag}:f": f"model.name: importing raises_{tag} raised ZeroDivisionError: division by zero",
        f"exits_{tag}:f": f"model.name: importing exits_{tag} raised SystemExit: 3",
    }
    for spec, message in cases.items():
        with pytest.raises(UserError) as caught:
            import_callable(spec, [folder], "model.name")
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value), spec


def test_ctrl_c_while_importing_stays_a_keyboard_interrupt(folder):
    with pytest.raises(KeyboardInterrupt):
        import_callable(f"ctrlc_{folder.name}:f", [folder], "model.name")


def test_user_code_turns_any_error_into_one_line_but_not_ctrl_c():
    with pytest.raises(UserError, match=r"^data: m:f raised SystemExit: 2$"), user_code("data: m:f"):
        sys.exit(2)
    with pytest.raises(UserError, match=r"^f raised ValueError: bad$"), user_code("f"):
        raise ValueError("bad\nsecond line")
    with pytest.raises(KeyboardInterrupt), user_code("f"):
        raise KeyboardInterrupt


def test_registered_objects_resolve_in_this_process():
    first, second = register(lambda: "a"), register(lambda: "b")
    assert first != second and first.startswith("paiexport.importing:registered_")
    assert import_callable(first, [], "model.name")() == "a"
    assert import_callable(second, [], "model.name")() == "b"
