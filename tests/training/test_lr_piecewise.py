"""`lr_schedule: piecewise`: absolute LRs replayed per step from set / function / torch segments."""

from __future__ import annotations

import math

import pytest
import torch

from paiexport.training.lr_piecewise import (
    FunctionLR,
    PiecewiseLR,
    SetLR,
    TorchLR,
    WeightDecayChange,
    piecewise_trace,
    weight_decay_trace,
)

# 2 steps per epoch throughout: steps 0..5 are epochs 0, 0.5, 1, 1.5, 2, 2.5


def test_set_applies_from_its_start_epoch():
    assert piecewise_trace([SetLR(start_epoch=2.0, learning_rate=0.1)], 0.5, 6, 2) == [0.5] * 4 + [0.1] * 2
    assert piecewise_trace([SetLR(learning_rate=0.1)], 0.5, 3, 2) == [0.1] * 3  # -1: at once


def test_linear_function_by_hand_then_held():
    seg = FunctionLR(lr_func="linear", init_lr=0.1, final_lr=0.0, start_epoch=0.0, end_epoch=2.0)
    assert piecewise_trace([seg], 1.0, 6, 2) == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.0, 0.0])


def test_cosine_function_by_hand_both_ways():
    down = FunctionLR(lr_func="cosine", init_lr=0.1, final_lr=0.0, start_epoch=0.0, end_epoch=2.0)
    quarter = 0.05 * math.cos(math.pi / 4) + 0.05  # p = 0.25
    assert piecewise_trace([down], 1.0, 5, 2) == pytest.approx([0.1, quarter, 0.05, 0.1 - quarter, 0.0])
    up = FunctionLR(lr_func="cosine", init_lr=0.0, final_lr=0.1, start_epoch=0.0, end_epoch=2.0)
    assert piecewise_trace([up], 1.0, 5, 2) == pytest.approx([0.0, 0.1 - quarter, 0.05, quarter, 0.1])


def test_torch_step_lr_equals_torch_stepped_per_optimizer_step():
    seg = TorchLR(lr_class="StepLR", lr_kwargs={"step_size": 1, "gamma": 0.5}, init_lr=0.2, start_epoch=0.0)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)  # one epoch = 2 steps
    expected = []
    for _ in range(6):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert expected == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05, 0.05])
    assert piecewise_trace([seg], 1.0, 6, 2) == pytest.approx(expected)


def test_torch_segment_takes_no_step_at_its_end_epoch():
    kwargs = {"step_size": 1, "gamma": 0.5}
    seg = TorchLR(lr_class="StepLR", lr_kwargs=kwargs, init_lr=0.2, start_epoch=0.0, end_epoch=1.0)
    assert piecewise_trace([seg], 1.0, 6, 2) == pytest.approx([0.2] * 6)


def test_weight_decay_changes_from_their_epoch():
    changes = [WeightDecayChange(start_epoch=1.0, weight_decay=0.0)]
    assert weight_decay_trace(changes, 4, 2) == [None, None, 0.0, 0.0]
    assert weight_decay_trace([WeightDecayChange(weight_decay=0.01)], 2, 2) == [0.01, 0.01]


def test_the_scheduler_sets_each_coming_step_and_resumes():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, weight_decay=0.5)
    sched = PiecewiseLR(opt, [0.3, 0.2, 0.1], [None, 0.01, None])
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.3, 0.5)
    sched.step()
    assert (group["lr"], group["weight_decay"]) == (0.2, 0.01)
    sched.step()
    sched.step()  # past the trace: the last values stay
    assert (group["lr"], group["weight_decay"]) == (0.1, 0.01) and sched.state_dict() == {"step_index": 3}
    fresh = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    PiecewiseLR(fresh, [0.3, 0.2, 0.1], [None, 0.01, None]).load_state_dict({"step_index": 1})
    assert (fresh.param_groups[0]["lr"], fresh.param_groups[0]["weight_decay"]) == (0.2, 0.01)
