"""The op tables dep_rules relies on: element-wise ops keep every channel to itself, spatial ops
act per channel, join functions combine two tensors position by position."""

from __future__ import annotations

import operator

import pytest
import torch

from paiexport.sparsity import op_kinds


def _channel_zero_only(op, x: torch.Tensor) -> None:
    """Changing channel 0 of the input changes channel 0 of the output and no other channel."""
    changed = x.clone()
    changed[:, 0] += 1.0
    before, after = op(x), op(changed)
    assert before.shape[:2] == x.shape[:2]
    assert torch.equal(before[:, 1:], after[:, 1:])
    assert not torch.equal(before[:, :1], after[:, :1])


@pytest.mark.parametrize("kind", op_kinds.ELEMENTWISE_MODULES, ids=lambda k: k.__name__)
def test_elementwise_modules_keep_each_channel_to_itself(kind) -> None:
    op = kind().eval()  # eval: dropout is the identity
    x = torch.linspace(-2, 2, 2 * 3 * 4).reshape(2, 3, 4)
    if kind in (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Identity):
        assert torch.equal(op(x), x)
    elif kind is torch.nn.ReLU or kind is torch.nn.ReLU6:
        _channel_zero_only(op, x.abs() + 0.1)  # a change on the positive side shows through
    else:
        _channel_zero_only(op, x)


@pytest.mark.parametrize("kind", op_kinds.SPATIAL_MODULES, ids=lambda k: k.__name__)
def test_spatial_modules_act_per_channel(kind) -> None:
    two_d = "2d" in kind.__name__ or kind is torch.nn.Upsample
    shape = (1, 3, 4, 4) if two_d else (1, 3, 4)
    args = (
        {"scale_factor": 2}
        if kind is torch.nn.Upsample
        else {"output_size": 2}
        if "Adaptive" in kind.__name__
        else {"kernel_size": 2}
    )
    x = torch.arange(float(torch.tensor(shape).prod())).reshape(shape)
    _channel_zero_only(kind(**args), x)


def test_join_functions_combine_position_by_position() -> None:
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 5.0]])
    expected = {operator.add: [[4.0, 7.0]], operator.sub: [[-2.0, -3.0]], operator.mul: [[3.0, 10.0]]}
    for fn, want in expected.items():
        assert fn in op_kinds.JOIN_FUNCTIONS
        assert fn(a, b).tolist() == want
    assert {"add", "sub", "mul"} <= op_kinds.JOIN_METHODS
    assert torch.mean in op_kinds.REDUCE and "mean" in op_kinds.REDUCE
