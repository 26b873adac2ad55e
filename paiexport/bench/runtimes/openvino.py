"""OpenVINO's CPU plugin (the `openvino` extra), behind onnxruntime's session interface.

Files are compiled with `INFERENCE_PRECISION_HINT: f32`: the plugin's default is bf16 on CPUs
with AVX512-BF16 or AMX, which changes float outputs by far more than the parity tolerance.
With f32 a float file is validated as in onnxruntime (parity with PyTorch); int8 files run
their integer kernels either way. The device's default is reported (`RuntimeInfo`).
`INFERENCE_NUM_THREADS: 1` computes on the calling thread (so speedups use its CPU time).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from paiexport.bench.runtimes.base import Precision, Runtime, Session
from paiexport.errors import shorten

PRECISION = "f32"
_NOISE = ("Exception from ", "Check '", "FrontEnd API failed", "Summary:", "Model wasn't fully converted")
_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "f64": "tensor(double)"}


@cache
def _core() -> Any:
    """One `openvino.Core` per process, as OpenVINO recommends."""
    import openvino

    return openvino.Core()


@dataclass(frozen=True)
class _Input:
    """An input as onnxruntime's NodeArg describes it: dynamic dimensions are strings."""

    name: str
    shape: list[int | str]
    type: str


def _input(port: Any) -> _Input:
    shape = port.get_partial_shape()
    dims: list[int | str] = (
        [d.get_length() if d.is_static else "?" for d in shape] if shape.rank.is_static else []
    )
    kind = port.get_element_type().to_string()
    return _Input(port.get_any_name(), dims, _TYPES.get(kind, f"tensor({kind})"))


class OpenVinoSession:
    """A compiled model and one infer request: `run` returns the outputs in graph order (new
    arrays each call); `output_names` is ignored (every output is returned, as with None)."""

    def __init__(self, compiled: Any) -> None:
        self._request = compiled.create_infer_request()
        self._inputs = [_input(port) for port in compiled.inputs]
        self._outputs = [_input(port) for port in compiled.outputs]

    def get_inputs(self) -> list[_Input]:
        return self._inputs

    def get_outputs(self) -> list[_Input]:
        """The outputs, described as onnxruntime's NodeArg (name, shape, type)."""
        return self._outputs

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        # share_inputs: no copy of the feeds (onnxruntime does not copy them either); the
        # outputs are copies, as onnxruntime's are, so a caller may keep them across calls.
        return list(self._request.infer(feeds, share_inputs=True).to_tuple())


class OpenVino(Runtime):
    name: ClassVar[str] = "openvino"
    package: ClassVar[str] = "openvino"
    extra: ClassVar[str | None] = "openvino"

    def open(self, path: Path, threads: int) -> Session:
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": PRECISION}
        model = _core().read_model(str(path))
        return OpenVinoSession(_core().compile_model(model, "CPU", config))

    def version(self) -> str:
        import openvino

        return openvino.__version__

    def precision(self) -> Precision:
        default = _core().get_property("CPU", "INFERENCE_PRECISION_HINT")
        return Precision(_short(str(default)), PRECISION)

    def device(self) -> str:
        return str(_core().get_property("CPU", "FULL_DEVICE_NAME"))

    def unreadable(self, exc: BaseException) -> str:
        """The reason line of OpenVINO's multi-line message (not "Exception from src/...")."""
        lines = [line.strip().removeprefix("-- ") for line in str(exc).splitlines() if line.strip()]
        reasons = [line for line in lines if not line.startswith(_NOISE)]
        if not reasons:
            return super().unreadable(exc)
        return f"{type(exc).__name__}: {shorten(reasons[-1], 150)}"


def _short(element_type: str) -> str:
    """<Type: 'bfloat16'> or 'bf16' -> 'bf16'."""
    names = {"bfloat16": "bf16", "float32": "f32", "float16": "f16", "float64": "f64"}
    text = element_type.removeprefix("<Type: '").removesuffix("'>")
    return names.get(text, text)
