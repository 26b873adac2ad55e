"""Checks before training: a bundled model fits in memory, a model takes a sample batch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paiexport.errors import UserError, first_line
from paiexport.inputs import Inputs, call_model, layout, rows
from paiexport.models.registry import ModelName, build_model
from paiexport.tasks import Task


def available_bytes() -> int:
    """MemAvailable on Linux (what can be allocated without swapping), else physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _meta_footprint(
    name: ModelName, args: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> tuple[int, int]:
    """(parameters, activation values of one training batch), built and run on the meta device."""
    with torch.device("meta"):
        model = build_model(name, args, input_shape, num_classes)
        sizes: list[int] = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()))
            for m in model.modules()
            if not list(m.children())
        ]
        model(torch.zeros(batch_size, *input_shape))
    for hook in hooks:
        hook.remove()
    return sum(p.numel() for p in model.parameters()), sum(sizes)


def check_model_size(
    name: ModelName, args: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> None:
    """Refuse, before anything is allocated, a model that cannot be built or would not fit in memory."""
    try:
        params, activations = _meta_footprint(name, args, input_shape, num_classes, batch_size)
    except (RuntimeError, ValueError) as exc:  # e.g. BatchNorm on a signal shrunk to one value
        first = first_line(exc, 200, kind=False)
        raise UserError(f"model.args: {first} (model {name.value}, input {input_shape})") from None
    # float32 weights, gradients and two optimizer moments; activations kept for backward plus
    # their gradients. An estimate, but it tells a typo (200000 channels) from a real model.
    needed = 4 * (4 * params + 2 * activations)
    available = available_bytes()
    if needed > available:
        raise UserError(
            f"model.args: model {name.value} needs about {needed / 2**30:.1f} GiB to train "
            f"({params:,} parameters, batch {batch_size}); {available / 2**30:.1f} GiB available"
        )


def check_sample_batch(
    model: nn.Module,
    sample: Inputs,
    num_classes: int | None = None,
    task: Task | None = None,
    targets: torch.Tensor | None = None,
) -> None:
    """One training-mode forward before any selection or training; the model is left unchanged.

    Shapes the model cannot take fail here as a one-line `model.args` error, not mid-run; so
    does an output that is not (batch, num_classes) logits (of a tuple or dict output, the
    one `task` reads).
    """
    state = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm stats move
    try:
        with torch.no_grad():
            out = call_model(model.train(), sample)
    except Exception as exc:  # user models raise anything (shape asserts, TypeError)
        raise UserError(f"model.args: the model fails on a sample batch: {first_line(exc, 200)}") from None
    finally:
        model.load_state_dict(state)
    if isinstance(out, dict) and out:  # a ModelOutput (Hugging Face): the task reads one of its values
        out = task.pick(out) if task is not None else next(iter(out.values()))
    if task is not None and targets is not None and task.name != "classification":
        task.check_outputs(task.pick(out), targets, "model.name: the output on a sample batch")
        return
    if task is not None and not isinstance(out, torch.Tensor):
        out = task.pick(out)
    want = (rows(sample), num_classes)
    if num_classes is not None and (not isinstance(out, torch.Tensor) or tuple(out.shape) != want):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"model.name: output {got} on a sample batch of {layout(sample)}, expected {want}")
