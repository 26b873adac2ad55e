"""Crash-safe training (#14): SIGKILL at a seeded random moment, `run --resume`, same files."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny import TINY_RECIPE

METHODS = {
    "rigl": {"name": "rigl", "update_every": 3},
    "lth": {"name": "lth", "levels": 2},
}
FORMATS = ["--set", "export.formats=[dense]", "--set", "bench.batch_sizes=[1]", "--set", "bench.iterations=2"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def paiexport(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "paiexport", "run", *args, *FORMATS]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def recipe_for(tmp_path: Path, method: str) -> Path:
    raw = yaml.safe_load(yaml.safe_dump(TINY_RECIPE))
    raw["method"], raw["train"]["epochs"] = METHODS[method], 4
    path = tmp_path / f"{method}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return err


def kill_when(proc: subprocess.Popen, metrics: str, lines: int, signum: int = signal.SIGKILL) -> None:
    """Send `signum` once the staging folder's metrics.jsonl has `lines` lines."""
    parent = Path(metrics)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        found = [
            p for p in parent.glob(".run.partial-*/metrics.jsonl") if len(p.read_text().splitlines()) >= lines
        ]
        if found:
            break
        time.sleep(0.005)
    proc.send_signal(signum)
    if signum == signal.SIGKILL:
        proc.wait()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sigkill_then_resume_gives_identical_files(method, tmp_path):
    recipe = recipe_for(tmp_path, method)
    finish(paiexport(str(recipe), "--out", str(tmp_path / "ref")))
    ref = tmp_path / "ref"
    total = len((ref / "metrics.jsonl").read_text().splitlines())
    rng = random.Random(f"resume-{method}")  # seeded choice of the kill point
    for attempt in range(2):
        out = tmp_path / f"k{attempt}" / "run"
        out.parent.mkdir()
        proc = paiexport(str(recipe), "--out", str(out))
        kill_when(proc, str(out.parent), rng.randrange(1, total))
        assert not out.exists()
        assert finish(paiexport(str(recipe), "--out", str(out), "--resume"))
        for name in ("masks.pt", "model.onnx"):
            assert sha(out / name) == sha(ref / name), name
        assert len((out / "metrics.jsonl").read_text().splitlines()) == total


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_with_a_checkpoint_and_say_how_to_resume(signum, tmp_path):
    recipe = recipe_for(tmp_path, "rigl")
    out = tmp_path / "run"
    proc = paiexport(str(recipe), "--out", str(out))
    kill_when(proc, str(tmp_path), 1, signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "--resume" in err.splitlines()[-1]
    assert list(tmp_path.glob(".run.partial-*/checkpoints/resume.pt"))
    assert "resuming" in finish(paiexport(str(recipe), "--out", str(out), "--resume"))
    assert (out / "model.onnx").is_file()
