"""A model's inputs: one tensor, a tuple (positional arguments) or a dict (keyword arguments).

A dataset's `x` is one of the three; a batch of it holds the same structure with every tensor
stacked along a first, batch, dimension. `call_model` is the one place a model is called on
data (`model(x)`, `model(*x)` or `model(**x)`); the other helpers apply an operation to every
tensor of a batch, keeping its structure. ONNX files name their inputs by `input_names` and
their outputs by `output_names`; `structured` gives a file's named outputs the model's shape.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import torch
import torch.utils._pytree as pytree
from torch import nn

from paiexport.errors import UserError, shorten

Inputs = Union[torch.Tensor, tuple[torch.Tensor, ...], dict[str, torch.Tensor]]  # noqa: UP007
SINGLE_INPUT_NAME = "input"  # the ONNX name of a model's one float input
SINGLE_OUTPUT_NAME = "logits"  # the ONNX name of a model's one output (a tensor)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def several(x: object) -> bool:
    """Whether `x` holds several inputs (a tuple or a dict), not one array."""
    return isinstance(x, tuple | dict)


def call_model(model: nn.Module | Callable[..., Any], x: Inputs) -> Any:
    """`model` on `x`: a dict is passed by keyword, a tuple by position, a tensor as it is."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, tuple):
        return model(*x)
    return model(x)


def map_inputs(x: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn` applied to every array of `x`, in the same structure."""
    if isinstance(x, dict):
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(fn(v) for v in x)
    return fn(x)


def tensors(x: Any) -> list[Any]:
    """The arrays of `x` in order (a dict's in its key order)."""
    if isinstance(x, dict):
        return list(x.values())
    return list(x) if isinstance(x, tuple) else [x]


def rows(x: Any) -> int:
    """The batch size of `x` (its first array's first dimension)."""
    return len(tensors(x)[0])


def take(x: Any, index: Any) -> Any:
    """The rows `index` (a slice or an index tensor) of every array of `x`."""
    return map_inputs(x, lambda t: t[index])


def to_device(x: Inputs, device: Any) -> Inputs:
    return map_inputs(x, lambda t: t.to(device))


def _join(parts: Sequence[Any], fn: Callable[[list[Any]], Any]) -> Any:
    first = parts[0]
    if isinstance(first, dict):
        return {k: fn([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple):
        return tuple(fn([p[i] for p in parts]) for i in range(len(first)))
    return fn(list(parts))


def stack(samples: Sequence[Inputs]) -> Inputs:
    """One batch of samples (each of the same structure)."""
    return _join(samples, torch.stack)


def concat(batches: Sequence[Inputs]) -> Inputs:
    """Batches joined along the batch dimension."""
    return _join(batches, torch.cat)


def is_integer(t: torch.Tensor | np.ndarray) -> bool:
    """An integer array (token ids, masks): not float, complex or bool."""
    if isinstance(t, np.ndarray):
        return t.dtype.kind in "iu"
    return not (t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool)


def as_example(spec: tuple[int, ...] | Inputs, n: int) -> Inputs:
    """An example batch: a per-sample shape (a tuple of ints) stands for `n` float rows of zeros
    (what callers have always passed), a batch is taken as it is."""
    if isinstance(spec, tuple) and all(isinstance(d, int) for d in spec):
        return torch.zeros(n, *spec)
    return spec


def zeros_rows(x: Inputs, n: int) -> Inputs:
    """`n` rows of zeros shaped and typed like the rows of `x`."""
    return map_inputs(x, lambda t: torch.zeros((n, *t.shape[1:]), dtype=t.dtype))


def layout(x: Any) -> Any:
    """The shape of every array of one sample `x`, in its structure (what must not change)."""
    return map_inputs(x, lambda t: tuple(t.shape))


def to_numpy(x: Inputs) -> Any:
    return map_inputs(x, lambda t: t.numpy() if isinstance(t, torch.Tensor) else t)


def _parameters(model: nn.Module) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C forward: no signature
        return []


def argument_names(model: nn.Module, count: int) -> list[str]:
    """The names of the first `count` positional arguments of `model.forward` (`input_<i>`
    beyond the named ones, e.g. for `*args`)."""
    named = [p.name for p in _parameters(model) if p.kind in _POSITIONAL]
    return [named[i] if i < len(named) else f"input_{i}" for i in range(count)]


def ordered(model: nn.Module, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A dict of inputs in the order of `model.forward`'s arguments (names it lacks last)."""
    order = {p.name: i for i, p in enumerate(_parameters(model))}
    return dict(sorted(x.items(), key=lambda kv: order.get(kv[0], len(order))))


def input_names(model: nn.Module, x: Inputs) -> list[str]:
    """The ONNX input names of `model` fed `x`: one float tensor is "input" (as every file has
    always named it); an integer tensor or a tuple is named after `forward`'s arguments, a dict
    by its keys (in `forward`'s order)."""
    if isinstance(x, dict):
        return list(ordered(model, x))
    if isinstance(x, tuple):
        return argument_names(model, len(x))
    return argument_names(model, 1) if is_integer(x) else [SINGLE_INPUT_NAME]


def positional(model: nn.Module, x: Inputs) -> tuple[Any, ...]:
    """`x` as positional arguments of `model.forward` (a dict's missing arguments take their
    defaults), for tracers that take no keywords (torch.fx)."""
    if not isinstance(x, dict):
        return x if isinstance(x, tuple) else (x,)
    args: list[Any] = []
    left = dict(x)
    for p in _parameters(model):
        if not left or p.kind not in _POSITIONAL:
            break
        if p.name not in left and p.default is inspect.Parameter.empty:
            raise UserError(f"data: the inputs lack {shorten(p.name)!r}, an argument of the model's forward")
        args.append(left.pop(p.name) if p.name in left else p.default)
    if left:
        raise UserError(f"data: input {shorten(next(iter(left)))!r} is no argument of the model's forward")
    return tuple(args)


def feeds(names: Sequence[str], x: Any) -> dict[str, Any]:
    """ONNX feeds of the inputs `names` (in the file's order) from `x`: a dict by name, a tuple by
    position, one array to the first input."""
    if isinstance(x, dict):
        missing = [n for n in names if n not in x]
        if missing:
            raise UserError(f"inputs: the file takes {shorten(missing[0])!r}, which the data has not")
        return {n: x[n] for n in names}
    parts = tensors(x)
    if len(parts) != len(names):
        raise UserError(f"inputs: the file takes {len(names)} inputs, the data has {len(parts)}")
    return dict(zip(names, parts, strict=True))


def flat_outputs(outputs: Any) -> list[torch.Tensor]:
    """Every tensor a model returned, in the order an exported file lists its outputs."""
    return [t for t in pytree.tree_leaves(outputs) if isinstance(t, torch.Tensor)]


def output_names(outputs: Any) -> list[str]:
    """The ONNX output names of a model that returned `outputs`: one tensor is "logits" (as every
    file has always named it), a dict of tensors its keys, anything else (a tuple) output_<i>."""
    if isinstance(outputs, torch.Tensor):
        return [SINGLE_OUTPUT_NAME]
    if isinstance(outputs, dict) and all(isinstance(v, torch.Tensor) for v in outputs.values()):
        return [str(k) for k in outputs]
    return [f"output_{i}" for i in range(len(flat_outputs(outputs)))]


def structured(named: dict[str, Any]) -> Any:
    """Named outputs (of a file, in its order) shaped as the model returned them (`output_names`
    reversed): one "logits" is the array itself, output_0.. a tuple, other names a dict."""
    names = list(named)
    if names == [SINGLE_OUTPUT_NAME]:
        return named[SINGLE_OUTPUT_NAME]
    if names == [f"output_{i}" for i in range(len(names))]:
        return tuple(named.values())
    return named
