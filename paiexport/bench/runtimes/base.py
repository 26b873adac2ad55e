"""What every runtime offers the bench layer: open a file on n threads, run feeds, say its precision.

A session is anything with onnxruntime's two methods: `get_inputs()` (objects with `name`,
`shape` and `type` like onnxruntime's NodeArg) and `run(None, feeds)` (the outputs in graph
order), so `verify.validate.run_session`, the benchmarks and the timing loop take any runtime's.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from paiexport.errors import first_line

EXACT_PRECISIONS = frozenset({"f32", "f64"})  # what float files are validated in: parity with PyTorch


class Session(Protocol):
    def get_inputs(self) -> list[Any]: ...

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class Precision:
    """A runtime's float precision on this CPU: its default, and the one paiexport runs it with."""

    default: str  # e.g. "bf16": OpenVINO's CPU plugin on AVX512-BF16 / AMX CPUs
    used: str  # paiexport sets f32 explicitly where the default is lossy

    @property
    def lossy_default(self) -> bool:
        return self.default not in EXACT_PRECISIONS

    @property
    def lossy(self) -> bool:
        return self.used not in EXACT_PRECISIONS


@dataclass(frozen=True)
class RuntimeInfo:
    """report.json `runtimes.<name>.info`: what ran the files."""

    name: str
    version: str
    device: str
    default_precision: str
    precision: str
    lossy_default: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runtime(ABC):
    """One inference runtime (`bench.runtimes`, `paiexport bench --runtime`)."""

    name: ClassVar[str]
    package: ClassVar[str]  # the Python package it needs
    extra: ClassVar[str | None]  # pip install 'paiexport[EXTRA]'; None: a core dependency

    @classmethod
    def installed(cls) -> bool:
        """Whether its package imports (a package set to None in sys.modules does not)."""
        try:
            importlib.import_module(cls.package)
        except ImportError:
            return False
        return True

    @abstractmethod
    def open(self, path: Path, threads: int) -> Session:
        """A session of `path` computing on `threads` threads (1: on the calling thread)."""

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def precision(self) -> Precision: ...

    @abstractmethod
    def device(self) -> str: ...

    def unreadable(self, exc: BaseException) -> str:
        """Why a file could not be opened, in one line."""
        return first_line(exc)

    def info(self) -> RuntimeInfo:
        p = self.precision()
        return RuntimeInfo(self.name, self.version(), self.device(), p.default, p.used, p.lossy_default)
