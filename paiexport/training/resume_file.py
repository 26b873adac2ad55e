"""`checkpoints/resume.pt`: what it holds, as plain data a planted file cannot run code from.

The file is `torch.save` of `ResumeState.to_dict()`: dicts, lists, strings, numbers and tensors
only (the RNG states and `TrainResult` in plain form). Reading it checks the format number
first, from the pickle's opcodes without running any of them, then loads it with
`torch.load(weights_only=True)`, which refuses every object that is not plain data.
"""

from __future__ import annotations

import pickle
import pickletools
import random
import re
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paiexport.errors import UserError, first_line
from paiexport.out_path import short
from paiexport.training.result import TrainResult

FORMAT = 3  # 1: pickled objects (TrainResult, numpy's RNG tuple), read with weights_only=False; 2: best_acc


def rng_state() -> dict[str, Any]:
    """Every global RNG stream, as tensors and numbers (paiexport's own streams are saved by their owners)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["name"], keys, saved["pos"], saved["has_gauss"], saved["gauss"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class LoopState:
    """Where the loop of the phase in progress stands."""

    epoch: int
    step: int
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    generator: torch.Tensor  # the batch-order generator's state
    best_score: float  # the best validation primary metric, negated when lower is better
    first_loss: float | None  # the divergence limit's reference (first step's loss)
    elapsed: float


@dataclass
class PhaseState:
    """One training phase as saved: finished (`loop` is None) or in progress."""

    key: str
    model: dict[str, torch.Tensor]
    callbacks: list[dict[str, Any]]  # each callback's `state_dict()`
    result: TrainResult
    rng: dict[str, Any]  # `rng_state()`
    log_pos: int  # metrics.jsonl records written so far
    loop: LoopState | None = None

    def to_dict(self) -> dict[str, Any]:
        plain = {
            "key": self.key,
            "model": self.model,
            "callbacks": self.callbacks,
            "result": self.result.to_dict(),
            "rng": self.rng,
            "log_pos": self.log_pos,
        }
        if self.loop is not None:
            plain.update({f.name: getattr(self.loop, f.name) for f in fields(LoopState)})
        return plain

    @classmethod
    def from_dict(cls, plain: Any, in_progress: bool) -> PhaseState:
        """A ValueError names the first field that is missing or of the wrong kind."""
        _check(
            plain, {"key": str, "model": dict, "callbacks": list, "result": dict, "rng": dict, "log_pos": int}
        )
        loop = None
        if in_progress:
            kinds = {
                "epoch": int,
                "step": int,
                "optimizer": dict,
                "schedule": dict,
                "generator": torch.Tensor,
                "best_score": float,
                "first_loss": (float, type(None)),
                "elapsed": float,
            }
            _check(plain, kinds)
            loop = LoopState(**{name: plain[name] for name in kinds})
        return cls(
            plain["key"],
            plain["model"],
            plain["callbacks"],
            TrainResult.from_dict(plain["result"]),
            plain["rng"],
            plain["log_pos"],
            loop,
        )


def _check(plain: Any, kinds: dict[str, type | tuple[type, ...]]) -> None:
    if not isinstance(plain, dict):
        raise ValueError(f"a phase is a {type(plain).__name__}, not a dict")
    for name, kind in kinds.items():
        if not isinstance(plain.get(name), kind):
            raise ValueError(f"field {name!r} is missing or a {type(plain.get(name)).__name__}")


@dataclass
class ResumeState:
    """The finished phases and the last checkpoint of the phase in progress."""

    finished: list[PhaseState]
    current: PhaseState | None

    def to_dict(self) -> dict[str, Any]:
        current = None if self.current is None else self.current.to_dict()
        return {"format": FORMAT, "finished": [p.to_dict() for p in self.finished], "current": current}

    @classmethod
    def from_dict(cls, plain: dict[str, Any]) -> ResumeState:
        finished = plain.get("finished")
        if not isinstance(finished, list):
            raise ValueError("field 'finished' is missing or not a list")
        current = plain.get("current")
        return cls(
            [PhaseState.from_dict(p, False) for p in finished],
            None if current is None else PhaseState.from_dict(current, True),
        )


def format_of(path: Path) -> int | None:
    """The file's format number, read from its first pickle opcodes (none of them is run)."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(names) != 1:
            raise ValueError("no data.pkl in the archive")
        with archive.open(names[0]) as pkl:
            ops = [item for item, _ in zip(pickletools.genops(pkl), range(8), strict=False)]
    values = [
        arg
        for op, arg, _ in ops
        if op.name not in ("PROTO", "FRAME", "EMPTY_DICT", "MARK")
        and "PUT" not in op.name
        and op.name != "MEMOIZE"
    ]
    if len(values) >= 2 and values[0] == "format" and type(values[1]) is int:
        return values[1]
    return None


def load(path: Path) -> ResumeState:
    """The saved state; a UserError naming the file: damaged, of another version, or not plain data."""
    try:
        found = format_of(path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"--resume: {short(path)} is damaged or truncated ({first_line(exc)})") from None
    if found != FORMAT:
        raise UserError(
            f"--resume: {short(path)} was written by another paiexport version (format {found}, not {FORMAT})"
        )
    try:
        plain = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused an object: it could have run code
        refused = re.search(r"GLOBAL (\S+)", str(exc))
        what = refused[1] if refused else first_line(exc)
        raise UserError(
            f"--resume: {short(path)} holds {what}, not plain data: refused, nothing run"
        ) from None
    except Exception as exc:  # torch reports a damaged archive as RuntimeError
        raise UserError(f"--resume: {short(path)} is damaged or truncated ({first_line(exc)})") from None
    try:
        return ResumeState.from_dict(plain)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--resume: {short(path)} is damaged: {exc}") from None
