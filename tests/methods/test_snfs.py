"""SNFS (sparse momentum): the dense-gradient momentum, the dropped total shared across layers by
mean momentum, regrowth at the largest momentum; checked by hand."""

import torch
from dynamic_steps import constant, linear, train_dynamic, update_once
from torch import nn

from paiexport.methods.snfs import SNFSUpdater
from paiexport.sparsity.masks import attach_masks, get_masks
from paiexport.training.callbacks import TrainState


def test_snfs_keeps_total_sparsity_and_redistributes(tmp_path):
    details, initial, probe, _ = train_dynamic(tmp_path, constant("snfs", update_every=2, drop_fraction=0.3))
    total = sum(int(m.sum()) for m in initial.values())
    assert all(sum(c.values()) == total for c in probe.counts)
    assert any(c != {n: int(m.sum()) for n, m in initial.items()} for c in probe.counts)
    updates = details["mask_updates"]["updates"]
    assert all(u["dropped"] == u["regrown"] for u in updates)


def backward_steps(updater: SNFSUpdater, grads: list[torch.Tensor]) -> nn.Sequential:
    """Steps 0, 1, ... of a masked one-layer model whose dense gradient is grads[step]; no update."""
    model = nn.Sequential(linear(torch.tensor([[1.0, 0.0], [0.0, 1.0]])))
    attach_masks(model, {"0.weight": torch.eye(2, dtype=torch.bool)})
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.0), None, 100, 100, lambda r: None)
    for step, grad in enumerate(grads):
        state.step = step
        updater.on_step_begin(state)
        model[0].weight.grad = None
        (model[0].weight * grad).sum().backward()
        updater.on_after_backward(state)
    return model


G1 = torch.tensor([[1.0, -2.0], [4.0, 8.0]])
G2 = torch.tensor([[2.0, 2.0], [-4.0, 0.0]])
G3 = torch.tensor([[1.0, 0.0], [0.0, -1.0]])


def test_snfs_momentum_decays_the_dense_gradient_of_every_step():
    """momentum 0.5: M = 0.25·G1 + 0.5·G2 + G3, pruned positions included, though no step of the
    three updates the mask (update_every 100)."""
    updater = SNFSUpdater(constant("snfs", momentum=0.5, update_every=100), torch.Generator())
    model = backward_steps(updater, [G1, G2, G3])
    assert updater.momentum["0.weight"].tolist() == [[2.25, 0.5], [-1.0, 1.0]]
    assert model[0].weight.grad.tolist() == (G3 * torch.eye(2)).tolist()  # the optimizer: masked


def test_snfs_momentum_survives_a_checkpoint_as_a_copy():
    updater = SNFSUpdater(constant("snfs", momentum=0.5), torch.Generator())
    backward_steps(updater, [G1])
    saved = updater.state_dict()
    backward_steps(updater, [G2])  # decays the live momentum in place
    assert saved["momentum"]["0.weight"].tolist() == G1.tolist()
    resumed = SNFSUpdater(constant("snfs", momentum=0.5), torch.Generator())
    resumed.load_state_dict(saved)
    backward_steps(resumed, [G2])
    assert saved["momentum"]["0.weight"].tolist() == G1.tolist()  # loading copied it too
    assert torch.equal(resumed.momentum["0.weight"], updater.momentum["0.weight"])


def counts_for(means: dict[str, float], inactive: dict[str, int], dropped: dict[str, int]) -> dict[str, int]:
    """grow_counts for 1-row layers whose active weights all have |momentum| = means[name]
    (and whose inactive positions have |momentum| 1000, which the share must ignore)."""
    updater = SNFSUpdater(constant("snfs"), torch.Generator())
    masks = {}
    for name, mean in means.items():
        active = 4
        masks[name] = torch.tensor([[True] * active + [False] * inactive[name]])
        updater.momentum[name] = torch.tensor([[mean] * active + [-1000.0] * inactive[name]])
    return updater.grow_counts(None, masks, dropped)


def test_snfs_shares_the_dropped_total_by_mean_momentum_of_active_weights():
    room = {"a": 8, "b": 8, "c": 8}
    # 5 dropped, means 1 : 1 : 2 -> 1.25, 1.25, 2.5 -> the largest remainder (c) takes the 5th
    assert counts_for({"a": 1.0, "b": 1.0, "c": 2.0}, room, {"a": 2, "b": 2, "c": 1}) == {
        "a": 1,
        "b": 1,
        "c": 3,
    }
    # 4 dropped, means 3 : 1 -> 3, 1; but a has room for 2 only: b takes the rest
    assert counts_for({"a": 3.0, "b": 1.0}, {"a": 2, "b": 8}, {"a": 2, "b": 2}) == {"a": 2, "b": 2}
    # no momentum anywhere: each layer regrows what it dropped
    assert counts_for({"a": 0.0, "b": 0.0}, {"a": 8, "b": 8}, {"a": 3, "b": 1}) == {"a": 3, "b": 1}


def test_one_snfs_update_by_hand():
    """Both layers drop 2 (half of 4); mean |momentum| of the active weights is 3 in a and 1 in b,
    so a regrows 3 and b 1, each where |momentum| is largest among its inactive positions."""
    wa = torch.tensor([[0.5, 0.0, 0.2, 0.0], [0.0, -0.1, 0.0, 0.7]])
    ga = torch.tensor([[3.0, 4.0, -3.0, -8.0], [1.0, 3.0, 6.0, 3.0]])
    wb = torch.tensor([[0.3, 0.0, 0.0, -0.4], [0.0, 0.6, 0.05, 0.0]])
    gb = torch.tensor([[-1.0, 0.5, -2.0, 1.0], [9.0, 1.0, -1.0, 0.25]])
    model = nn.Sequential(linear(wa), linear(wb))
    _, records = update_once(
        SNFSUpdater(constant("snfs"), torch.Generator()), model, {"0.weight": ga, "1.weight": gb}
    )
    masks = get_masks(model)
    # a keeps 0.5, 0.7 and regrows |m| = 8, 6, 4; b keeps -0.4, 0.6 and regrows |m| = 9
    assert {tuple(p) for p in masks["0.weight"].nonzero().tolist()} == {
        (0, 0),
        (1, 3),
        (0, 3),
        (1, 2),
        (0, 1),
    }
    assert {tuple(p) for p in masks["1.weight"].nonzero().tolist()} == {(0, 3), (1, 1), (1, 0)}
    assert records[0]["dropped"] == {"0.weight": 2, "1.weight": 2}
    assert records[0]["regrown"] == {"0.weight": 3, "1.weight": 1}
    for name, layer, w in (("0.weight", model[0], wa), ("1.weight", model[1], wb)):
        grown = masks[name] & (w == 0)
        assert torch.all(layer.weight.detach()[grown] == 0), name  # regrown weights start at zero
