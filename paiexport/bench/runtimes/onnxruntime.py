"""onnxruntime's CPU execution provider: the reference runtime (every run's `validation` and latency)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import onnxruntime as ort

from paiexport.bench.runtimes.base import Precision, Runtime, Session
from paiexport.verify.checks import make_session


class OnnxRuntime(Runtime):
    name: ClassVar[str] = "onnxruntime"
    package: ClassVar[str] = "onnxruntime"
    extra: ClassVar[str | None] = None

    def open(self, path: Path, threads: int) -> Session:
        return make_session(path, threads)

    def version(self) -> str:
        return ort.__version__

    def precision(self) -> Precision:
        return Precision("f32", "f32")  # the CPU provider computes float files in float32

    def device(self) -> str:
        return "CPUExecutionProvider"
