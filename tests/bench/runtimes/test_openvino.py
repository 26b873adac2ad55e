"""OpenVINO's CPU plugin behind onnxruntime's session interface (the `openvino` extra)."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tinyonnx import save_graph, tensor

from paiexport.bench.runtimes.onnxruntime import OnnxRuntime
from paiexport.bench.synthetic import matmul_chain
from paiexport.export.quantize import to_int8
from paiexport.export.variants import Int8Format, Int8Mode

pytest.importorskip("openvino", reason="openvino is an optional extra: pip install 'paiexport[openvino]'")

from paiexport.bench.runtimes.openvino import OpenVino


def test_runs_feeds_like_onnxruntime_in_f32(tmp_path):
    path = matmul_chain(tmp_path / "chain.onnx", layers=3, width=64)
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    session = OpenVino().open(path, threads=1)
    (spec,) = session.get_inputs()
    assert (spec.name, spec.shape, spec.type) == ("input", ["?", 64], "tensor(float)")
    (out,) = session.run(None, {"input": x})
    (expected,) = OnnxRuntime().open(path, 1).run(None, {"input": x})
    assert np.abs(out - expected).max() <= 1e-5  # f32, not the CPU's bf16 default (about 1e-2 off)


def test_outputs_are_new_arrays_each_call(tmp_path):
    session = OpenVino().open(matmul_chain(tmp_path / "chain.onnx", layers=1, width=8), threads=1)
    (first,) = session.run(None, {"input": np.ones((2, 8), np.float32)})
    kept = first.copy()
    session.run(None, {"input": np.full((2, 8), 5.0, np.float32)})
    assert np.array_equal(first, kept)


def test_one_thread_computes_on_the_calling_thread(tmp_path):
    # speedups at 1 thread compare the calling thread's CPU time: it must hold the work
    session = OpenVino().open(matmul_chain(tmp_path / "chain.onnx", layers=8, width=256), threads=1)
    feeds = {"input": np.ones((64, 256), np.float32)}
    session.run(None, feeds)
    thread, process = time.thread_time(), time.process_time()
    for _ in range(20):
        session.run(None, feeds)
    thread, process = time.thread_time() - thread, time.process_time() - process
    assert thread >= 0.9 * process


def test_reports_the_cpus_default_precision_and_uses_f32():
    info = OpenVino().info()
    assert info.precision == "f32"
    assert info.default_precision in {"f32", "bf16", "f16"}
    assert info.lossy_default == (info.default_precision != "f32")


def test_qoperator_int8_is_unreadable_with_the_reason_on_one_line(tmp_path):
    # QOperator int8 of a Gemm is onnxruntime's com.microsoft.QGemm, which OpenVINO cannot convert
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["input", "W", "b"], ["logits"], transB=1)]
    weights = [
        numpy_helper.from_array(rng.standard_normal((4, 16)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b"),
    ]
    io = [tensor("input", ["n", 16])], [tensor("logits", ["n", 4])]
    dense = save_graph(tmp_path / "gemm.onnx", nodes, *io, weights)
    calibration = rng.standard_normal((32, 16)).astype(np.float32)
    qop = to_int8(onnx.load(str(dense)), Int8Mode.static, calibration, int8_format=Int8Format.qoperator)
    path = tmp_path / "qop.onnx"
    onnx.save(qop, str(path))
    runtime = OpenVino()
    with pytest.raises(Exception) as caught:
        runtime.open(path, 1)
    reason = runtime.unreadable(caught.value)
    assert reason == "RuntimeError: No conversion rule found for operations: com.microsoft.QGemm"


def test_typed_inputs_are_described_like_onnxruntime(tmp_path):
    path = save_graph(
        tmp_path / "half.onnx",
        [helper.make_node("Identity", ["x"], ["y"])],
        [tensor("x", [2, 3], TensorProto.FLOAT16)],
        [tensor("y", [2, 3], TensorProto.FLOAT16)],
    )
    (spec,) = OpenVino().open(path, 1).get_inputs()
    assert (spec.shape, spec.type) == ([2, 3], "tensor(float16)")
