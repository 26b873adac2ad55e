"""PyTorch -> ONNX: masks baked in and removed, outputs equal, the batch dimension dynamic."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from paiexport.export.torch_export import to_onnx
from paiexport.models import ModelName, build_model
from paiexport.sparsity.masks import attach_masks, prunable_weights, strip_masks


def run(model_proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize(
    ("name", "args", "shape"),
    [
        ("mlp", {"hidden": [16]}, (1, 40)),
        ("cnn1d", {"channels": [4, 8, 8], "hidden": 16}, (1, 40)),
        ("lenet5", {}, (1, 8, 8)),
        ("resnet20", {"width": 4, "blocks_per_stage": 1}, (3, 16, 16)),
    ],
)
def test_masked_model_exports_with_parity(name, args, shape):
    torch.manual_seed(0)
    model = build_model(ModelName(name), args, shape, 10)
    g = torch.Generator().manual_seed(0)
    attach_masks(
        model, {n: torch.rand(w.shape, generator=g) < 0.2 for n, w in prunable_weights(model).items()}
    )
    model = strip_masks(model).eval()
    proto = to_onnx(model, shape, opset=18)
    names = {i.name for i in proto.graph.initializer}
    assert not any("mask" in n for n in names), "masks must be baked in, not exported"
    x = np.random.default_rng(0).standard_normal((5, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(proto, x), expected, atol=1e-4)
    # dynamic batch
    assert run(proto, x[:1]).shape == (1, 10)
