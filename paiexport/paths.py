"""Every name of a run folder, owned here: names only, nothing is read or written.

Staging, locking, publishing and recovery of run folders live in `paiexport.runs.staging`.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from paiexport.variant import Variant

DEFAULT_OUTPUT_ROOT = Path("models")
# Written into every run (and export) folder; `--force` replaces only a folder that has it,
# or an empty one. While a run is staged, it holds an flock on this file: a staging folder
# whose marker nobody holds is left by a dead process, whatever its PID says.
RUN_MARKER = ".paiexport-run"
MARKER_TEXT = "paiexport run folder: `--force` may replace it\n"
# Runs written before the marker existed are recognised by these two files.
LEGACY_RUN_FILES = ("report.json", "recipe.yaml")
CHECKPOINTS = "checkpoints"
BEST, LAST = "best.pt", "last.pt"

# Siblings of a run folder NAME: `.NAME.partial-PID-TOKEN` while a run is staged,
# `.NAME.replaced-PID-TOKEN` while --force swaps an old run for a new one (older versions
# wrote them without the token).
_PARTIAL = re.compile(r"^\.(.+)\.partial-(\d+)(-[0-9a-f]+)?$")
_REPLACED = re.compile(r"^\.(.+)\.replaced-(\d+)(-[0-9a-f]+)?$")
# Room these siblings take beyond the run folder's own name (PID up to 10 digits, 8 hex digits).
SIBLING_ROOM = len("..replaced--") + 10 + 8
# `.NAME.tmp-PID`: a file being written before its atomic rename; a kill can leave one behind.
_TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")
TEMPORARY_GLOB = ".*.tmp-*"


def level_phase(level: int) -> str:
    """The training phase (and checkpoint folder) of LTH level `level`: `level0`, `level1`, ..."""
    return f"level{level}"


@dataclass(frozen=True)
class PhaseCheckpoints:
    """The checkpoints one training phase writes: `best.pt` and `last.pt` in `folder`."""

    folder: Path

    @property
    def best(self) -> Path:
        return self.folder / BEST

    @property
    def last(self) -> Path:
        return self.folder / LAST

    def chosen(self, best: bool) -> Path:
        """The checkpoint `train.checkpoint` exports: best or last."""
        return self.best if best else self.last


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def holding(cls, file: Path) -> RunPaths:
        """The run folder a file of a run lies in: `RUN/model.pt`, `RUN/checkpoints/best.pt` or a
        phase's `RUN/checkpoints/level2/best.pt` (by the names alone)."""
        folder = file.parent
        if folder.name == CHECKPOINTS:
            return cls(folder.parent)
        if folder.parent.name == CHECKPOINTS:
            return cls(folder.parent.parent)
        return cls(folder)

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def recipe_folder(self) -> Path:
        """The folder the recipe was read from (one line): its factories and data are looked up
        there again when `paiexport export` rebuilds the model."""
        return self.root / "recipe_folder.txt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def phase(self, tag: str = "") -> PhaseCheckpoints:
        """The checkpoints of a training phase: `checkpoints/` itself for a method that trains
        once, `checkpoints/TAG/` for tagged phases (`level_phase(n)`, `dense`, `finetune`)."""
        return PhaseCheckpoints(self.checkpoints / tag if tag else self.checkpoints)

    @property
    def best_checkpoint(self) -> Path:
        return self.phase().best

    @property
    def last_checkpoint(self) -> Path:
        return self.phase().last

    @property
    def resume_state(self) -> Path:
        """Training's resume file; a staging folder holding it survives the stale-staging cleanup."""
        return self.checkpoints / "resume.pt"

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

    @property
    def export(self) -> Path:
        """Where `paiexport export` writes by default."""
        return self.root / "export"

    @property
    def marker(self) -> Path:
        return self.root / RUN_MARKER

    def plot(self, name: str) -> Path:
        """The PNG of one report.html figure (training, sparsity, latency, size)."""
        return self.plots / f"{name}.png"

    def onnx(self, variant: Variant) -> Path:
        """`model.onnx` for the dense variant, `model.<variant>.onnx` for the others."""
        return self.root / variant.file_name


def default_run_dir(name: str) -> Path:
    return DEFAULT_OUTPUT_ROOT / name


def staging_folder(final: Path, token: str) -> Path:
    """Where this process stages the run folder `final`."""
    return final.parent / f".{final.name}.partial-{os.getpid()}-{token}"


def replaced_folder(final: Path, token: str) -> Path:
    """Where this process keeps the old run `final` while --force moves the new one in."""
    return final.parent / f".{final.name}.replaced-{os.getpid()}-{token}"


def staging_glob(final: Path) -> str:
    """A glob pattern for the staging folders of `final` (in `final.parent`)."""
    return f".{glob.escape(final.name)}.partial-*"


def staged(name: str) -> tuple[str, int] | None:
    """(run folder name, PID) of a staging folder's name, or None for any other name."""
    found = _PARTIAL.match(name)
    return (found[1], int(found[2])) if found else None


def replaced(name: str) -> tuple[str, int] | None:
    """(run folder name, PID) of an old run kept during a swap, or None for any other name."""
    found = _REPLACED.match(name)
    return (found[1], int(found[2])) if found else None


def temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place (this process's own name)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def is_temporary(name: str) -> bool:
    """A name `temporary` gives (any process's)."""
    return _TEMPORARY.match(name) is not None
