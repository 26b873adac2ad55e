"""The shape of the code, checked: layers import downwards only, modules and functions stay small."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "paiexport"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_layers_contract_holds() -> None:
    """pyproject's import-linter contract: cli > pipeline > recipe > reporting > ... > errors."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is part of the test extra: pip install -e '.[test]'")
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


def test_no_module_over_300_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_over_50_lines() -> None:
    long = [f for p in _modules() for f in _long_functions(p)]
    assert not long, "functions over 50 lines:\n" + "\n".join(long)


def test_requires_python_and_ruff_target_cover_strenum():
    """`enum.StrEnum` (paiexport/variant.py and the config enums) exists from Python 3.11."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert "StrEnum" in (ROOT / "paiexport" / "variant.py").read_text()
