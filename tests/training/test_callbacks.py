"""The loop's extension points: optional hooks, and KeepPrunedZero re-applying masks after a step."""

from __future__ import annotations

import torch
from torch import nn

from paiexport.sparsity.masks import attach_masks
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState


def state_of(model: nn.Module) -> TrainState:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return TrainState(model, optimizer, nn.functional.cross_entropy, 1, 1, lambda record: None)


def test_every_hook_is_optional():
    state, callback = state_of(nn.Linear(2, 2)), TrainCallback()
    for hook in ("on_train_begin", "on_step_begin", "on_after_backward", "on_step_end", "on_epoch_end"):
        getattr(callback, hook)(state)
    callback.on_train_end(state)
    callback.load_state_dict({})
    assert callback.state_dict() == {} and (state.step, state.epoch, state.batch) == (0, 0, None)


def _stepped(keep: bool) -> torch.Tensor:
    model = nn.Sequential(nn.Linear(3, 1, bias=False))
    attach_masks(model, {"0.weight": torch.tensor([[True, False, True]])})
    state = state_of(model)
    if keep:
        KeepPrunedZero().on_train_begin(state)
    with torch.no_grad():
        model[0].weight[0, 1] = 5.0  # something wrote into a pruned weight
    model(torch.ones(1, 3)).sum().backward()
    state.optimizer.step()
    return model[0].weight.detach()[0]


def test_keep_pruned_zero_masks_the_weights_after_every_step():
    assert float(_stepped(keep=False)[1]) == 5.0  # the gradient hook alone does not undo it
    kept = _stepped(keep=True)
    assert float(kept[1]) == 0.0 and float(kept[0]) != 0.0 and float(kept[2]) != 0.0
