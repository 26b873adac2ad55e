"""What one training phase returns (`train`), and its plain form for the resume file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from paiexport.training.metrics_log import EpochRecord


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    exported_epoch: int = 0  # the epoch whose weights the model holds after `train`
    seconds: float = 0.0
    compact: dict[str, Any] | None = None  # train.compact: report.json `train_compact`
    threads: int = 0  # torch CPU threads of the fit stage (set by the pipeline)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, dicts and numbers (a deep copy)."""
        return {**asdict(self), "history": [r.to_dict() for r in self.history]}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainResult:
        """The inverse of `to_dict`; a ValueError names a missing or unknown field."""
        names = {f.name for f in fields(cls)}
        odd = sorted(set(saved) ^ names)
        if odd:
            raise ValueError(f"result field {odd[0]!r} is {'unknown' if odd[0] in saved else 'missing'}")
        history = [EpochRecord.from_dict(row) for row in saved["history"]]
        return cls(**{**saved, "history": history})
