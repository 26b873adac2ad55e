"""Validate every exported variant of a run against the PyTorch model it came from."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from paiexport.data import Split
from paiexport.sparsity.masks import prunable_weights
from paiexport.variant import Variant
from paiexport.verify.validate import FileValidation, Judging, Outputs, torch_outputs, validate_file


def validate_variants(
    files: dict[Variant, Path],
    model: nn.Module,
    test: Split,
    judging: Judging,
    reference: Outputs | None = None,
) -> dict[Variant, FileValidation]:
    """Every file checked against `model` in the task's terms; a quantized file is recognized by its graph.

    `reference`: the model's outputs on `test`, when the caller has them already."""
    if reference is None:
        reference = torch_outputs(model, test.x)
    zeros = {n: (int((w == 0).sum()), w.numel()) for n, w in prunable_weights(model).items()}
    return {
        v: validate_file(p, v, model, test, judging=judging, reference=reference, zeros=zeros)
        for v, p in files.items()
    }
