"""CPU threads of torch (and of onnxruntime's calibration) for one run: `train.threads`.

Why not torch's default: it starts one OpenMP thread per core, and every op waits at a
barrier for all of them. When another process holds a core, one thread is descheduled and
every op waits for it: on a shared 2-core machine an epoch of the bundled CNN was 7.7x
slower beside one busy loop, and 1.36x with one thread (benchmarks/threads_under_load.py).
Small models gain little from more threads anyway, so `auto` gives them one.

`auto` rule: 1 thread when one training step costs under AUTO_SINGLE_THREAD_FLOPS
(forward multiply-adds x 2 x 3 for the backward x batch size); otherwise half the usable
cores (at least 1), never more than torch would use by default (or a sweep gives a job).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal

import torch
from torch import nn

from paiexport.inputs import Inputs, as_example, call_model

AUTO_SINGLE_THREAD_FLOPS = 2e9  # bundled recipes: 0.42-1.66 GFLOP per step
ThreadsSetting = int | Literal["auto"]


def usable_cores() -> int:
    """Cores this process may run on (affinity, e.g. taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def forward_macs(model: nn.Module, sample: tuple[int, ...] | Inputs) -> int:
    """Multiply-adds of the forward pass of `sample` (one row, or one sample's shape: float
    zeros) in the Conv and Linear layers."""
    sample = as_example(sample, 1)
    total = 0

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        weight = module.weight
        if isinstance(module, nn.Linear):
            total += weight.numel() * (output.numel() // output.shape[-1])
        else:  # a conv: each output element costs in_channels/groups x kernel multiply-adds
            total += output.numel() * (weight.numel() // weight.shape[0])

    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    hooks = [m.register_forward_hook(count) for m in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            call_model(model, sample)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total


def resolve_threads(
    setting: ThreadsSetting, model: nn.Module, sample: tuple[int, ...] | Inputs, batch_size: int
) -> int:
    """The thread count `train.threads` stands for (see the module docstring); `sample` is one
    row of the model's inputs (or one sample's shape)."""
    if setting != "auto":
        return int(setting)
    step_flops = forward_macs(model, sample) * 2 * 3 * batch_size
    if step_flops < AUTO_SINGLE_THREAD_FLOPS:
        return 1
    return max(1, min(usable_cores() // 2, torch.get_num_threads()))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch intra-op threads = n meanwhile (restored after); inter-op threads = n if still
    possible: torch allows setting them once per process, before any parallel work."""
    previous = torch.get_num_threads()
    if torch.get_num_interop_threads() != n:
        # Already fixed for this process (by an earlier run or parallel work): keep it.
        with suppress(RuntimeError):
            torch.set_num_interop_threads(n)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
