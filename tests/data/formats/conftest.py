"""Running `python -m paiexport run` on a dataset file, and what a refusal of it must leave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import paiexport

ROOT = Path(paiexport.__file__).resolve().parents[1]


@pytest.fixture
def run_cli(tmp_path: Path, tiny_recipe_dict: dict):
    """`python -m paiexport run` of the tiny recipe reading `data`; a hang fails the test."""

    def run(data: dict, timeout: float = 90) -> subprocess.CompletedProcess:
        recipe = {**tiny_recipe_dict, "data": {"batch_size": 16, "val_fraction": 0.2, **data}}
        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        command = [sys.executable, "-m", "paiexport", "run", "recipe.yaml", "--out", "out"]
        env = {**os.environ, "PYTHONPATH": path}
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    return run


def _assert_refused(done: subprocess.CompletedProcess, tmp_path: Path, *words: str) -> None:
    """Exit 2, one line naming what is wrong, and neither the output nor its staging folder left."""
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


@pytest.fixture
def assert_refused():
    """`assert_refused(done, tmp_path, *words)`: the checks of a refused `run_cli`."""
    return _assert_refused
