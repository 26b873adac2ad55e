"""PyTorch -> ONNX. Masks are baked in and removed before export."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch
from onnx import ModelProto
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def to_onnx(model: nn.Module, input_shape: tuple[int, ...], opset: int) -> ModelProto:
    """Export with the dynamo exporter; the batch dimension is dynamic.

    The model must carry no masks (see `paiexport.sparsity.masks.strip_masks`): an attached
    mask would be exported as a second dense tensor.
    """
    model = model.eval().cpu()
    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch")
    # The exporter logs about optional torchvision ops and deprecations: not the user's concern.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    return proto


def save_onnx(model: ModelProto, path: Path) -> None:
    """Save as one self-contained file (the bundled models are far below protobuf's 2 GB)."""
    onnx.save_model(model, str(path))
