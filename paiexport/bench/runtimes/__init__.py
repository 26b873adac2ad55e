"""The runtime registry: a name in `bench.runtimes` / `--runtime` -> the class that runs files in it.

No runtime's package is imported here: `openvino` is an optional extra, imported when used.
"""

from __future__ import annotations

from collections.abc import Sequence

from paiexport.bench.runtimes.base import Precision, Runtime, RuntimeInfo, Session
from paiexport.bench.runtimes.onnxruntime import OnnxRuntime
from paiexport.bench.runtimes.openvino import OpenVino
from paiexport.errors import UserError, shorten

RUNTIMES: dict[str, type[Runtime]] = {"onnxruntime": OnnxRuntime, "openvino": OpenVino}
DEFAULT_RUNTIME = "onnxruntime"  # the reference: every ratio is also taken against dense in it


def check_names(names: Sequence[str], where: str) -> list[str]:
    """The names, deduplicated in order; an unknown name is a `UserError` naming `where`."""
    for name in names:
        if name not in RUNTIMES:
            choose = ", ".join(RUNTIMES)
            raise UserError(f"{where}: unknown runtime {shorten(name)!r} (choose from {choose})")
    return list(dict.fromkeys(names))


def make_runtimes(names: Sequence[str], where: str) -> list[Runtime]:
    """Every named runtime, or a `UserError` naming the first one not installed and its extra
    ("--runtime openvino: not installed; pip install 'paiexport[openvino]'")."""
    found = []
    for name in check_names(names, where):
        cls = RUNTIMES[name]
        if not cls.installed():
            install = f"pip install 'paiexport[{cls.extra}]'" if cls.extra else f"pip install {cls.package}"
            raise UserError(f"{where} {name}: not installed; {install}")
        found.append(cls())
    return found


__all__ = [
    "DEFAULT_RUNTIME",
    "RUNTIMES",
    "OnnxRuntime",
    "OpenVino",
    "Precision",
    "Runtime",
    "RuntimeInfo",
    "Session",
    "check_names",
    "make_runtimes",
]
