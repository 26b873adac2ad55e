"""int8 with onnxruntime.quantization: dynamic, or static with calibration on training samples.

Pure `ModelProto -> ModelProto` (the quantizer works on files, so it runs in a temporary
folder); metadata is copied over and the result is checked.

Reference: Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", https://arxiv.org/abs/1712.05877
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import ModelProto
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    calibrate,
    quantize_dynamic,
    quantize_static,
)

from paiexport.export.variants import Int8Mode


class _Samples(CalibrationDataReader):
    def __init__(self, input_name: str, x: np.ndarray, batch: int = 32) -> None:
        self._feeds = iter([{input_name: x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer logs advice at WARNING on the root logger; silence it only meanwhile."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@contextmanager
def _calibration_threads(threads: int) -> Iterator[None]:
    """onnxruntime's calibrator opens its session with default options (one thread per core,
    which collapses on a shared CPU) and takes no options: give its session `threads`."""
    original = calibrate.CalibraterBase.create_inference_session

    def create(self: calibrate.CalibraterBase) -> None:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.infer_session = onnxruntime.InferenceSession(
            self.augmented_model_path, sess_options=options, providers=self.execution_providers
        )

    calibrate.CalibraterBase.create_inference_session = create
    try:
        yield
    finally:
        calibrate.CalibraterBase.create_inference_session = original


def to_int8(
    model: ModelProto, mode: Int8Mode, calibration: np.ndarray | None = None, threads: int = 1
) -> ModelProto:
    """int8 weights (and activations); `calibration` (N, *input) is required for static,
    run by onnxruntime on `threads` threads."""
    quiet, calibration_threads = _quiet_root_logger(), _calibration_threads(threads)
    with quiet, calibration_threads, tempfile.TemporaryDirectory(prefix="paiexport-int8-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, str(src))
        if mode is Int8Mode.dynamic:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        else:
            if calibration is None or len(calibration) == 0:
                raise ValueError("static int8 needs calibration samples")
            reader = _Samples(model.graph.input[0].name, calibration.astype(np.float32))
            quantize_static(
                src, dst, reader, quant_format=QuantFormat.QOperator,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )  # fmt: skip
        out = onnx.load(str(dst))
    del out.metadata_props[:]
    out.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(out)
    return out
