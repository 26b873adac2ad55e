"""metrics.jsonl, owned by one object: every record of a run is written through `MetricsLog`.

A resumed run truncates the file to the line count its checkpoint saw, then replays the
work since the start of training: records the file already holds (the first `replay_until`
writes) are counted but not written again, so no line is duplicated or lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0  # records written (or replayed) so far
        self.replay_until = 0
        self._cut: str | None = None  # the kept records, written over the file before the next new one

    def write(self, record: dict[str, Any]) -> None:
        if self.position >= self.replay_until:
            if self._cut is not None:
                self.path.write_text(self._cut)
                self._cut = None
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
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
