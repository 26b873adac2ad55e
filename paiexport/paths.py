"""Every on-disk path of a run, owned here; runs are staged and published atomically."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from paiexport.errors import UserError

DEFAULT_OUTPUT_ROOT = Path("models")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def model_state(self) -> Path:
        """The exported model's state dict: masks baked in, no mask buffers."""
        return self.root / "model.pt"

    @property
    def masks(self) -> Path:
        return self.root / "masks.pt"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def plot(self, name: str) -> Path:
        """The PNG of one report.html figure (training, sparsity, latency, size)."""
        return self.plots / f"{name}.png"

    def onnx(self, variant: str) -> Path:
        """`model.onnx` for the dense variant, `model.<variant>.onnx` for the others."""
        return self.root / ("model.onnx" if variant == "dense" else f"model.{variant}.onnx")


def default_run_dir(name: str) -> Path:
    return DEFAULT_OUTPUT_ROOT / name


def check_writable(final: Path, force: bool) -> None:
    """Fail before any work when the output exists and --force was not given."""
    resolved, cwd = final.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise UserError(f"output folder {final} is the current folder or contains it; choose another --out")
    if final.exists() and not force:
        raise UserError(f"output folder {final} exists; pass --force to replace it")
    if final.exists() and not final.is_dir():
        raise UserError(f"output path {final} is a file, not a folder")


@contextmanager
def staged_run_dir(final: Path, force: bool) -> Iterator[RunPaths]:
    """Write into a hidden sibling folder and move it into place only on success.

    A failed or interrupted run leaves no half-written output, and an existing run
    is replaced (with --force) only once the new one is complete.
    """
    check_writable(final, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield RunPaths(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Swap in the new run before deleting the old one: a crash in between leaves a complete run.
    previous = final.parent / f".{final.name}.replaced-{os.getpid()}"
    if final.exists():
        final.rename(previous)
    staging.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
