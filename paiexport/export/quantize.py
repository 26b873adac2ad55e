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
from typing import Any

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

from paiexport.export.variants import Int8Format, Int8Mode
from paiexport.inputs import feeds, rows

CONV_OPS = ("Conv", "ConvTranspose")


QUANT_FORMATS = {Int8Format.qdq: QuantFormat.QDQ, Int8Format.qoperator: QuantFormat.QOperator}


class _Samples(CalibrationDataReader):
    """Calibration batches: every input of the graph fed from `x` (one array, or a tuple or dict
    of them: `inputs.feeds`), floats as float32, integers (token ids, masks) as they are."""

    def __init__(self, names: list[str], x: Any, batch: int = 32) -> None:
        arrays = {n: a if a.dtype.kind != "f" else a.astype(np.float32) for n, a in feeds(names, x).items()}
        chunks = range(0, rows(arrays), batch)
        self._feeds = iter([{n: a[i : i + batch] for n, a in arrays.items()} for i in chunks])

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


def _output_width(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> int | None:
    """Output channels/features of a weighted op (Conv, Gemm, MatMul by a constant), else None."""
    weight = weights.get(node.input[1]) if len(node.input) > 1 else None
    if weight is None or node.op_type not in ("Conv", "Gemm", "MatMul"):
        return None
    if node.op_type == "Gemm":
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        return weight.dims[0] if trans_b else weight.dims[1]
    return weight.dims[0] if node.op_type == "Conv" else weight.dims[-1]


def narrow_nodes(model: ModelProto, min_channels: int) -> list[str]:
    """Names of the nodes that stay float: weighted ops with fewer than `min_channels` output
    channels (int8 kernels lose to float there), and the weightless ops (Add, Relu, pooling…)
    that read their float outputs, so no quantize/dequantize pair sits between them."""
    if min_channels <= 0:
        return []
    weights = {t.name: t for t in model.graph.initializer}
    narrow: list[str] = []
    float_tensors: set[str] = set()
    for node in model.graph.node:  # topological order
        width = _output_width(node, weights)
        stays_float = width < min_channels if width is not None else bool(float_tensors & set(node.input))
        if stays_float:
            narrow.append(node.name)
            float_tensors.update(node.output)
    return narrow


def _named(model: ModelProto) -> ModelProto:
    """A copy whose nodes all have unique names (the quantizer excludes nodes by name)."""
    named = ModelProto()
    named.CopyFrom(model)
    seen: set[str] = set()
    for i, node in enumerate(named.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return named


def resolve_int8_mode(model: ModelProto, mode: Int8Mode) -> tuple[Int8Mode, str]:
    """The mode `export.int8: auto` stands for on this float graph, and why: static when it has
    convolutions (onnxruntime's dynamic ConvInteger is slower than float, up to 25x), dynamic for
    MatMul/Gemm-only graphs (fast MatMulInteger, no calibration). Other modes stay as asked."""
    if mode is not Int8Mode.auto:
        return mode, f"export.int8: {mode.value} (set in the recipe)"
    convs = sum(node.op_type in CONV_OPS for node in model.graph.node)
    if convs:
        return Int8Mode.static, (
            f"graph has {convs} Conv/ConvTranspose nodes: dynamic ConvInteger is slower than float"
        )
    return (
        Int8Mode.dynamic,
        "no Conv/ConvTranspose nodes: dynamic MatMulInteger is fast and needs no calibration",
    )


def graph_input_names(model: ModelProto) -> list[str]:
    """The inputs a caller feeds (old IR files also list their weights as inputs)."""
    weights = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in weights]


def to_int8(
    model: ModelProto,
    mode: Int8Mode,
    calibration: Any = None,
    threads: int = 1,
    min_channels: int = 0,
    int8_format: Int8Format = Int8Format.qdq,
) -> ModelProto:
    """int8 weights (and activations); `calibration` (N, *input), or a tuple or dict of such
    arrays for several inputs, is required for static,
    run by onnxruntime on `threads` threads, and the static graph is written as `int8_format`.
    `auto` is resolved first (`resolve_int8_mode`). Ops with fewer than `min_channels` output
    channels stay float."""
    mode, _ = resolve_int8_mode(model, mode)
    quiet, calibration_threads = _quiet_root_logger(), _calibration_threads(threads)
    exclude: list[str] = []
    if min_channels > 0:  # the graph is left byte for byte as it was otherwise
        model = _named(model)
        exclude = narrow_nodes(model, min_channels)
    with quiet, calibration_threads, tempfile.TemporaryDirectory(prefix="paiexport-int8-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, str(src))
        if mode is Int8Mode.dynamic:
            # the dynamic quantizer first rewrites Gemm as MatMul + Add, named after the Gemm
            exclude += [f"{name}{part}" for name in exclude for part in ("_MatMul", "_Add")]
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
        else:
            if calibration is None or rows(calibration) == 0:
                raise ValueError("static int8 needs calibration samples")
            reader = _Samples(graph_input_names(model), calibration)
            quantize_static(
                src,
                dst,
                reader,
                quant_format=QUANT_FORMATS[int8_format],
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
            )
        out = onnx.load(str(dst))
    del out.metadata_props[:]
    out.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(out)
    return out
