"""onnxruntime behind the runtime interface: today's sessions (verify/checks.make_session)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from paiexport.bench.runtimes.onnxruntime import OnnxRuntime
from paiexport.bench.synthetic import matmul_chain


def test_opens_a_session_on_the_given_threads_and_runs_feeds(tmp_path):
    path = matmul_chain(tmp_path / "chain.onnx", layers=2, width=8)
    session = OnnxRuntime().open(path, threads=2)
    assert isinstance(session, ort.InferenceSession)
    assert session.get_session_options().intra_op_num_threads == 2
    x = np.ones((3, 8), np.float32)
    (out,) = session.run(None, {"input": x})
    assert out.shape == (3, 8)


def test_computes_in_float32_and_says_so():
    info = OnnxRuntime().info()
    assert (info.precision, info.default_precision, info.lossy_default) == ("f32", "f32", False)
    assert info.version == ort.__version__
