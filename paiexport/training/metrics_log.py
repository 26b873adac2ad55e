"""metrics.jsonl, owned by one module: every record of a run is written through `MetricsLog`,
and the epoch records are read back here too (`read_epoch_records`).

A resumed run truncates the file to the line count its checkpoint saw, then replays the
work since the start of training: records the file already holds (the first `replay_until`
writes) are counted but not written again, so no line is duplicated or lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch of a training phase: one metrics.jsonl line, keys in this order.

    `train_metric`/`val_metric` are the task's primary metric, written under its short name:
    `train_acc`/`val_acc` for classification, `val_r2`, `val_ppl`, ... for other tasks.
    """

    epoch: int  # 1-based, within its phase (an LTH level, a fine-tuning, ...)
    step: int
    train_loss: float
    train_metric: float
    val_loss: float
    val_metric: float
    lr: float
    seconds: float  # since the start of the phase
    metric: str = "acc"  # the primary metric's short name (tasks.Task.short)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": self.train_loss,
            f"train_{self.metric}": self.train_metric,
            "val_loss": self.val_loss,
            f"val_{self.metric}": self.val_metric,
            "lr": self.lr,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EpochRecord:
        """A metrics.jsonl row (or a resume file's) with exactly these keys; else a ValueError."""
        named = [k for k in row if k.startswith("val_") and k != "val_loss"]
        metric = named[0].removeprefix("val_") if len(named) == 1 else ""
        expected = {"epoch", "step", "train_loss", "val_loss", "lr", "seconds"}
        if not metric or set(row) != expected | {f"train_{metric}", f"val_{metric}"}:
            raise ValueError(f"not an epoch record: keys {sorted(row)}")
        values = {k: row[k] for k in expected}
        return cls(
            **values, train_metric=row[f"train_{metric}"], val_metric=row[f"val_{metric}"], metric=metric
        )

    @staticmethod
    def is_epoch(row: dict[str, Any]) -> bool:
        """Methods log other records to the same file (LTH levels, mask updates); those carry no
        training loss, so they are not epochs."""
        return "epoch" in row and "train_loss" in row


Record = EpochRecord | dict[str, Any]


def as_dict(record: Record) -> dict[str, Any]:
    """A record as the plain dict its metrics.jsonl line holds."""
    return record.to_dict() if isinstance(record, EpochRecord) else record


class MetricsLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0  # records written (or replayed) so far
        self.replay_until = 0
        self._cut: str | None = None  # the kept records, written over the file before the next new one

    def write(self, record: Record) -> None:
        if self.position >= self.replay_until:
            if self._cut is not None:
                self.path.write_text(self._cut)
                self._cut = None
            with self.path.open("a") as f:
                f.write(json.dumps(as_dict(record)) + "\n")
        self.position += 1

    def resume(self, lines: int) -> None:
        """Keep the first `lines` records (a kill may have left later ones); replay from the start.

        The later records are cut only when the first new one is written: a resume that fails
        before that leaves the file as it was."""
        text = self.path.read_text() if self.path.is_file() else ""
        kept = "".join(text.splitlines(keepends=True)[:lines])
        self._cut = kept if kept != text else None
        self.position, self.replay_until = 0, len(kept.splitlines())

    def seek(self, position: int) -> None:
        """A training phase restored from its checkpoint wrote these records already."""
        self.position = position


def read_epoch_records(path: Path) -> list[EpochRecord]:
    """The epoch records of a metrics.jsonl (every phase's, in order); none when it is missing."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [EpochRecord.from_dict(row) for row in rows if EpochRecord.is_epoch(row)]
