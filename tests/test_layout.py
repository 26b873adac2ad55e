"""Tests mirror the package: paiexport/<path>/<name>.py is tested in tests/<path>/test_<name>.py.

End-to-end tests (whole recipes through the CLI) live in tests/e2e/, fixture files in
tests/fixtures/, shared helpers (tiny.py, nets.py, userdata.py, ...) at the root of tests/.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "paiexport"
TESTS = ROOT / "tests"

# Folders of tests/ that mirror no package.
NOT_A_PACKAGE = {"e2e", "fixtures"}

# Modules without a test file of their own yet (the comment says which tests exercise them now):
# remove an entry when its test file arrives. Every module has one now.
NOT_YET: set[str] = set()


def modules() -> set[str]:
    """Every module of the package as "path/name", packages' __init__ and __main__ left out."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            found.add(path.relative_to(PACKAGE).with_suffix("").as_posix())
    return found


def expected_test_file(module: str) -> Path:
    """tests/<path>/test_<name>.py for the module "path/name"."""
    *folders, name = module.split("/")
    return TESTS.joinpath(*folders, f"test_{name}.py")


def test_every_module_has_its_test_file_or_is_listed_as_not_yet() -> None:
    lacking = {m for m in modules() if not expected_test_file(m).is_file()}
    assert not lacking - NOT_YET, f"no tests/<path>/test_<name>.py: {sorted(lacking - NOT_YET)}"
    assert not NOT_YET - lacking, f"tested (or gone) now, remove from NOT_YET: {sorted(NOT_YET - lacking)}"


def mirrored(folder: Path) -> bool:
    """Whether a folder of tests/ should mirror a package (not e2e/, fixtures/, caches)."""
    parts = folder.relative_to(TESTS).parts
    return not any(part in NOT_A_PACKAGE or part.startswith((".", "_")) for part in parts)


def test_every_test_folder_mirrors_a_package() -> None:
    folders = {p.relative_to(TESTS).as_posix() for p in TESTS.rglob("*") if p.is_dir() and mirrored(p)}
    stray = {f for f in folders if not (PACKAGE / f / "__init__.py").is_file()}
    assert not stray, f"test folders that mirror no package of paiexport/: {sorted(stray)}"
