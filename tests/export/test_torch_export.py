"""PyTorch -> ONNX: masks baked in and removed, outputs equal, the batch dimension dynamic."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.export.torch_export import check_sequence_lengths, to_onnx
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


class TinyLM(nn.Module):
    """Embedding -> Linear: per-token logits (N, T, V), like a language model's."""

    def __init__(self, vocab: int = 11, width: int = 8) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, width), nn.Linear(width, vocab)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids))


class TwoHeads(nn.Module):
    """A float input and an integer one; returns a tuple or a dict."""

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.embed, self.fc, self.as_dict = nn.Embedding(5, 4), nn.Linear(4, 3), as_dict

    def forward(self, features: torch.Tensor, token: torch.Tensor):
        hidden = features + self.embed(token)
        out = (hidden, self.fc(hidden))
        return {"hidden": out[0], "scores": out[1]} if self.as_dict else out


def io(proto: onnx.ModelProto) -> tuple[list[tuple[str, int]], list[str]]:
    inputs = [(i.name, i.type.tensor_type.elem_type) for i in proto.graph.input]
    return inputs, [o.name for o in proto.graph.output]


def test_token_ids_stay_int64_and_are_named_after_the_forward_argument():
    torch.manual_seed(0)
    model = TinyLM().eval()
    ids = torch.randint(0, 11, (2, 5))
    proto = to_onnx(model, ids, 18)
    assert io(proto) == ([("input_ids", onnx.TensorProto.INT64)], ["logits"])
    # one float input keeps the name every file has had, given as a batch or as a shape
    for example in (torch.randn(2, 4), (4,)):
        floats = to_onnx(nn.Sequential(nn.Linear(4, 3)).eval(), example, 18)
        assert io(floats) == ([("input", onnx.TensorProto.FLOAT)], ["logits"])
    with torch.no_grad():
        np.testing.assert_allclose(run(proto, ids.numpy()), model(ids).numpy(), atol=1e-5)


@pytest.mark.parametrize("as_dict", [False, True])
def test_several_inputs_and_outputs_are_named_and_all_exported(as_dict):
    torch.manual_seed(0)
    model = TwoHeads(as_dict).eval()
    x = (torch.randn(3, 4), torch.tensor([0, 4, 2]))
    proto = to_onnx(model, x, 18)
    names = ["hidden", "scores"] if as_dict else ["output_0", "output_1"]
    assert io(proto) == ([("features", onnx.TensorProto.FLOAT), ("token", onnx.TensorProto.INT64)], names)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"features": x[0].numpy(), "token": x[1].numpy()})
    with torch.no_grad():
        want = model(*x)
    for found, expected in zip(got, want.values() if as_dict else want, strict=True):
        np.testing.assert_allclose(found, expected.numpy(), atol=1e-5)


def test_a_dict_of_inputs_is_exported_in_forward_order_by_keyword():
    proto = to_onnx(TwoHeads().eval(), {"token": torch.tensor([1, 2]), "features": torch.zeros(2, 4)}, 18)
    assert [i.name for i in proto.graph.input] == ["features", "token"]


def test_a_dynamic_sequence_axis_runs_at_two_lengths_with_parity():
    torch.manual_seed(0)
    model = TinyLM().eval()
    proto = to_onnx(model, torch.randint(0, 11, (2, 5)), 18, {"input_ids": [0, 1]})
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "input_ids_1"]
    for length in (3, 17):
        ids = torch.randint(0, 11, (4, length))
        with torch.no_grad():
            expected = model(ids).numpy()
        found = run(proto, ids.numpy())
        assert found.shape == (4, length, 11)
        assert float(np.abs(found - expected).max()) <= 1e-4


def test_without_dynamic_axes_the_sequence_length_is_fixed():
    proto = to_onnx(TinyLM().eval(), torch.randint(0, 11, (2, 5)), 18)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 5]


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"tokens": [1]}, "export.dynamic_axes: no input 'tokens' (the model's inputs: input_ids)"),
        ({"input_ids": [2]}, "export.dynamic_axes.input_ids: axis 2 is not an axis of its 2-d input"),
    ],
)
def test_an_unknown_input_or_axis_is_refused_naming_the_field(axes, message):
    with pytest.raises(UserError) as refused:
        to_onnx(TinyLM().eval(), torch.randint(0, 11, (2, 5)), 18, axes)
    assert str(refused.value) == message


class MaskedLM(TinyLM):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids) * attention_mask.unsqueeze(-1))


def test_inputs_sharing_a_dynamic_axis_list_it_each_and_share_its_name():
    x = {"input_ids": torch.randint(0, 11, (2, 5)), "attention_mask": torch.ones(2, 5, dtype=torch.int64)}
    proto = to_onnx(MaskedLM().eval(), x, 18, {"input_ids": [1], "attention_mask": [1]})
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input]
    assert dims == [["batch", "input_ids_1"], ["batch", "input_ids_1"]]
    with pytest.raises(
        UserError, match=r"^export.dynamic_axes: the model cannot keep these axes dynamic: .*static"
    ):
        to_onnx(MaskedLM().eval(), x, 18, {"input_ids": [1]})  # attention_mask's axis 1 is tied to it


def test_the_file_holds_no_stack_trace_or_install_path_but_keeps_the_module_names():
    """The exporter records each node's Python stack (absolute paths of this machine's packages);
    a shipped file must not carry them, and the same model must give the same bytes anywhere."""
    torch.manual_seed(0)
    proto = to_onnx(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval(), (4,), 18)
    keys = {p.key for n in proto.graph.node for p in n.metadata_props}
    assert "pkg.torch.onnx.stack_trace" not in keys and "namespace" in keys
    blob = proto.SerializeToString()
    for root in {Path(torch.__file__).parent.parent, Path(__file__).parent}:
        assert str(root).encode() not in blob


class PositionsLM(MaskedLM):
    """Learned positions, as GPT-2's and BERT's: at most `positions` tokens; records the lengths
    it was run at."""

    def __init__(self, positions: int = 8) -> None:
        super().__init__()
        self.positions, self.seen = nn.Embedding(positions, 8), []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        assert input_ids.shape == attention_mask.shape
        self.seen.append(input_ids.shape[1])
        where = torch.arange(input_ids.shape[1])
        return self.head((self.embed(input_ids) + self.positions(where)) * attention_mask.unsqueeze(-1))


def test_a_sequence_length_the_model_cannot_take_is_refused_naming_bench_seq_lens():
    model = PositionsLM().train()
    x = {"attention_mask": torch.ones(1, 3, dtype=torch.int64), "input_ids": torch.tensor([[1, 2, 3]])}
    axes = {"input_ids": [0, 1], "attention_mask": [0, 1]}
    check_sequence_lengths([8, 2], axes, model, x)  # stretched and cut along the sequence axis
    assert model.seen == [2, 8] and model.training
    with pytest.raises(UserError) as refused:
        check_sequence_lengths([4, 9], axes, model, x)
    assert str(refused.value) == (
        "bench.seq_lens: the model fails at sequence length 9: IndexError: index out of range in self"
    )
    assert model.training  # left in the mode it was in
    model.seen.clear()
    check_sequence_lengths([9], {"input_ids": [0]}, model, x)  # no sequence axis: no other length timed
    assert model.seen == []
