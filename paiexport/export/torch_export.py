"""PyTorch -> ONNX. Masks are baked in and removed before export.

The file takes the model's inputs as the data gives them, in their dtype (token ids stay
int64), and gives every output the model returns. Names: one float input is "input" and one
output "logits" (as every file has always had them); an integer input, or several, is named
after the model's forward arguments (a dict by its keys); a tuple's outputs are output_<i>, a
dict's its keys (`paiexport.inputs`). The batch dimension of every input is dynamic, other
axes when `export.dynamic_axes` names them.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from onnx import ModelProto
from torch import nn

from paiexport.errors import UserError, first_line, shorten
from paiexport.inputs import (
    SINGLE_INPUT_NAME,
    SINGLE_OUTPUT_NAME,
    Inputs,
    as_example,
    call_model,
    input_names,
    ordered,
    output_names,
    tensors,
    to_device,
)

INPUT_NAME = SINGLE_INPUT_NAME
OUTPUT_NAME = SINGLE_OUTPUT_NAME
FIELD = "export.dynamic_axes"


def check_dynamic_axes(axes: dict[str, list[int]], model: nn.Module, example: Inputs) -> None:
    """`export.dynamic_axes` names inputs of the model and axes they have; else a UserError."""
    names = input_names(model, example)
    ranks = dict(zip(names, (t.dim() for t in tensors(_ordered(model, example))), strict=True))
    for name, listed in axes.items():
        if name not in ranks:
            raise UserError(f"{FIELD}: no input {shorten(name)!r} (the model's inputs: {', '.join(names)})")
        bad = [a for a in listed if a >= ranks[name]]
        if bad:
            raise UserError(f"{FIELD}.{name}: axis {bad[0]} is not an axis of its {ranks[name]}-d input")


def _ordered(model: nn.Module, example: Inputs) -> Inputs:
    return ordered(model, example) if isinstance(example, dict) else example


def check_sequence_lengths(
    lengths: list[int], axes: dict[str, list[int]], model: nn.Module, example: Inputs
) -> None:
    """`bench.seq_lens`: the model runs (eval mode, no gradients) on `example` stretched to each
    length along axis 1 of every input `axes` makes dynamic there (the files' sequence axis), so
    that a length it cannot take (GPT-2 and BERT learn one embedding per position) is a
    UserError before training rather than a crash when the files are timed. No sequence axis:
    nothing to check (the bench times no other length)."""
    names = input_names(model, example)
    inputs = list(tensors(_ordered(model, example)))  # in `names` order
    pairs = zip(names, inputs, strict=True)
    sequences = {n for n, t in pairs if 1 in axes.get(n, []) and t.dim() > 1 and t.shape[1] > 0}
    if not sequences:
        return
    training = model.training
    model.eval()
    try:
        for length in sorted(set(lengths)):
            try:
                with torch.no_grad():
                    call_model(model, _at_length(example, names, inputs, sequences, length))
            except Exception as exc:  # a model raises anything (IndexError from an Embedding)
                limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
                known = f" (its config: max_position_embeddings {limit})" if isinstance(limit, int) else ""
                raise UserError(
                    f"bench.seq_lens: the model fails at sequence length {length}{known}: {first_line(exc)}"
                ) from None
    finally:
        model.train(training)


def _at_length(
    example: Inputs, names: list[str], inputs: list[torch.Tensor], sequences: set[str], length: int
) -> Inputs:
    """`example` (its tensors `inputs`, named `names`) with its `sequences` inputs repeated (or
    cut) along axis 1 to `length`."""
    parts = [
        t.repeat(1, -(-length // t.shape[1]), *[1] * (t.dim() - 2))[:, :length] if n in sequences else t
        for n, t in zip(names, inputs, strict=True)
    ]
    if isinstance(example, dict):
        return dict(zip(names, parts, strict=True))
    return tuple(parts) if isinstance(example, tuple) else parts[0]


def _dynamic_shapes(names: list[str], example: Inputs, axes: dict[str, list[int]]) -> Any:
    """torch.export's `dynamic_shapes`: one "batch" Dim on every input's first axis, and a Dim
    per axis `axes` names (`<input>_<axis>`: a size of its own, or equal to another's where the
    model ties them)."""
    batch = torch.export.Dim("batch")

    def shape(name: str) -> dict[int, Any]:
        extra = sorted(set(axes.get(name, [])) - {0})
        return {0: batch, **{a: torch.export.Dim.DYNAMIC for a in extra}}

    if isinstance(example, dict):
        return {n: shape(n) for n in names}
    return tuple(shape(n) for n in names)


def to_onnx(
    model: nn.Module,
    example: tuple[int, ...] | Inputs,
    opset: int,
    dynamic_axes: dict[str, list[int]] | None = None,
) -> ModelProto:
    """Export with the dynamo exporter, traced on `example` (a batch shaped and typed like the
    data's inputs, e.g. `DataSplits.example()`; one sample's shape stands for two float rows of
    zeros); the batch dimension is dynamic.

    The model must carry no masks (see `paiexport.sparsity.masks.strip_masks`): an attached
    mask would be exported as a second dense tensor.
    """
    model = model.eval().cpu()
    example = _ordered(model, to_device(as_example(example, 2), "cpu"))
    axes = dynamic_axes or {}
    check_dynamic_axes(axes, model, example)
    names = input_names(model, example)
    with torch.no_grad():
        outputs = output_names(call_model(model, example))
    args, kwargs = ((), example) if isinstance(example, dict) else (tensors(example), None)
    # The exporter logs about optional torchvision ops and deprecations: not the user's concern.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                tuple(args),
                kwargs=kwargs,
                dynamo=True,
                opset_version=opset,
                input_names=names,
                output_names=outputs,
                dynamic_shapes=_dynamic_shapes(names, example, axes),
                verbose=False,
            )
        except Exception as exc:
            if not any(set(a) - {0} for a in axes.values()):
                raise
            raise UserError(f"{FIELD}: the model cannot keep these axes dynamic: {_reason(exc)}") from None
    proto = program.model_proto
    if any(set(a) - {0} for a in axes.values()):
        _name_dims(proto)
    _drop_stack_traces(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto


STACK_TRACE = "pkg.torch.onnx.stack_trace"


def _drop_stack_traces(proto: ModelProto) -> None:
    """Remove the exporter's per-node Python stack traces: they hold the absolute paths and line
    numbers of this machine's installed packages, so the same model gave different bytes on
    every install and shipped local paths (the module names in `namespace` and the other
    `pkg.torch.onnx.*` keys stay)."""
    for node in [*proto.graph.node, *(n for f in proto.functions for n in f.node)]:
        kept = [p for p in node.metadata_props if p.key != STACK_TRACE]
        if len(kept) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(kept)


def _name_dims(proto: ModelProto) -> None:
    """Dynamic axes named `<input>_<axis>` (the exporter's "s70" says nothing) wherever they
    appear: inputs, outputs and intermediate shapes; a size two inputs share takes the first's."""
    graph = proto.graph
    names: dict[str, str] = {}
    for value in graph.input:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param and dim.dim_param != "batch":
                names.setdefault(dim.dim_param, f"{value.name}_{axis}")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


def _reason(exc: BaseException) -> str:
    """What torch.export says went wrong: the last line of the innermost cause (the exporter's
    own message is a page of advice)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip(" -") for line in str(exc).splitlines() if line.strip(" -")]
    return shorten(lines[-1] if lines else type(exc).__name__, 240)


def save_onnx(model: ModelProto, path: Path) -> None:
    """Save as one self-contained file (the bundled models are far below protobuf's 2 GB)."""
    onnx.save_model(model, str(path))
