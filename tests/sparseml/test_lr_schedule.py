"""The learning rate at a step, as SparseML's manager sets it, against torch's schedulers."""

from __future__ import annotations

import pytest

from paiexport.sparseml.lr_schedule import lr_trace
from paiexport.sparseml.modifiers import LearningRateModifier


def test_lr_modifier_end_epoch_freezes_the_lr() -> None:
    mod = LearningRateModifier(
        lr_class="ExponentialLR", lr_kwargs={"gamma": 0.5}, init_lr=0.2, start_epoch=1.0, end_epoch=3.0
    )
    trace = lr_trace([mod], base_lr=0.7, steps=20, steps_per_epoch=2)
    # base LR before start; init 0.2 at epoch 1; x0.5 per epoch; no step at end_epoch 3
    assert trace == pytest.approx([0.7, 0.7, 0.2, 0.2, 0.1, 0.1] + [0.1] * 14)


def test_lr_replay_matches_torch_schedulers_stepped_per_optimizer_step() -> None:
    """SparseML steps torch's scheduler once per optimizer step, milestones scaled to steps."""
    import torch

    spe, steps = 5, 40
    mod = LearningRateModifier(
        lr_class="MultiStepLR", lr_kwargs={"milestones": [1.4, 3, 3.2]}, init_lr=0.3, start_epoch=0.0
    )
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[7, 15, 16], gamma=0.1)
    expected = []
    for _ in range(steps):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lr_trace([mod], base_lr=1.0, steps=steps, steps_per_epoch=spe) == pytest.approx(expected)
