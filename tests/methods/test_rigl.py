"""RigL: regrowth where the dense gradient is largest, per layer, on update steps only."""

import pytest
import torch
from dynamic_steps import G, W, constant, linear, one_update, update_once
from torch import nn

from paiexport.methods.rigl import RigLUpdater
from paiexport.sparsity.masks import attach_masks, get_masks, pop_dense_grads
from paiexport.training.callbacks import TrainState


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_rigl_update_by_hand(optimizer):
    layer = linear(W)
    before = {"0.weight": W != 0}
    model, opt, records = one_update(RigLUpdater(constant(), torch.Generator()), layer, G, optimizer)
    mask = get_masks(model)["0.weight"]
    # 6 active, drop 3 smallest |w|: (0,2) 0.05, (2,0) 0.1, (1,3) 0.2; grow 3 largest inactive |g|.
    expected = torch.zeros(3, 4, dtype=torch.bool)
    for i, j in [(0, 0), (1, 1), (2, 3), (2, 1), (1, 0), (0, 1)]:
        expected[i, j] = True
    assert mask.tolist() == expected.tolist()
    dropped = before["0.weight"] & ~mask
    grown = mask & ~before["0.weight"]
    assert {tuple(p) for p in dropped.nonzero().tolist()} == {(0, 2), (2, 0), (1, 3)}
    assert {tuple(p) for p in grown.nonzero().tolist()} == {(2, 1), (1, 0), (0, 1)}
    w = layer.weight.detach()
    assert torch.all(w[grown] == 0) and torch.all(w[dropped] == 0)
    assert torch.equal(w[mask & before["0.weight"]], W[mask & before["0.weight"]])
    state = [v for v in opt.state[layer.weight].values() if v.shape == W.shape]
    assert len(state) == (1 if optimizer == "sgd" else 2)  # momentum_buffer | exp_avg, exp_avg_sq
    for value in state:
        assert torch.all(value[grown] == 0) and torch.all(value[dropped] == 0)
        assert torch.all(value[~(grown | dropped)] == 1)
    assert records == [
        {
            "event": "mask_update",
            "update": 1,
            "step": 1,
            "epoch": 1,
            "drop_fraction": 0.5,
            "dropped": {"0.weight": 3},
            "regrown": {"0.weight": 3},
        }
    ]


def test_rigl_regrows_in_each_layer_as_many_as_it_dropped_from_its_own_gradient():
    """Layer a's gradients are all far above layer b's: a global top-k would regrow only in a.

    a: 5 active, drop 3 (of 5 at 0.5, 2 are kept: ties to even) and regrow 3 of its 7 inactive.
    b: 3 active, drop 1 (2 kept) and regrow 1 of its 5 inactive.
    """
    wa = torch.tensor([[0.8, 0.0, -0.3, 0.0], [0.0, 0.05, 0.0, 0.0], [-0.6, 0.0, 0.0, 0.1]])
    ga = torch.tensor([[1.0, 50.0, 1.0, -70.0], [10.0, 1000.0, -90.0, 20.0], [1.0, 30.0, 5.0, 1.0]])
    wb = torch.tensor([[0.0, 0.4, 0.0, 0.0], [0.2, 0.0, 0.0, -0.9]])
    gb = torch.tensor([[0.01, 9.0, -0.03, 0.02], [9.0, 0.005, 0.001, 9.0]])
    model = nn.Sequential(linear(wa), linear(wb))
    updater = RigLUpdater(constant(), torch.Generator())
    _, records = update_once(updater, model, {"0.weight": ga, "1.weight": gb})
    masks = get_masks(model)
    # a keeps 0.8 and -0.6, regrows |g| = 90, 70, 50 (not 1000: that position was active)
    assert {tuple(p) for p in masks["0.weight"].nonzero().tolist()} == {
        (0, 0),
        (2, 0),
        (1, 2),
        (0, 3),
        (0, 1),
    }
    # b keeps 0.4 and -0.9, regrows |g| = 0.03 (the 9s are at active positions)
    assert {tuple(p) for p in masks["1.weight"].nonzero().tolist()} == {(0, 1), (1, 3), (0, 2)}
    assert records[0]["dropped"] == {"0.weight": 3, "1.weight": 1}
    assert records[0]["regrown"] == {"0.weight": 3, "1.weight": 1}
    assert updater.dense_grads == {}  # used once: a later update cannot grow from a stale gradient


def test_rigl_requests_dense_gradients_only_on_update_steps():
    updater = RigLUpdater(constant(update_every=3), torch.Generator())
    model = nn.Sequential(linear(W))
    attach_masks(model, {"0.weight": W != 0})
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.0), None, 9, 9, lambda r: None)
    dense_steps = []
    for step in range(9):
        state.step = step
        updater.on_step_begin(state)
        (model[0].weight * G).sum().backward()
        if pop_dense_grads(model):
            dense_steps.append(step + 1)
    assert dense_steps == [3, 6]  # 9 would be at 100% of training: no update there
