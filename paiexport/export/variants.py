"""The exported files: which formats a recipe asks for and the variant each one produces.

Variant keys are also report.json keys; `RunPaths.onnx(variant)` gives the file name
(`model.onnx`, `model.sparse.onnx`, `model.compact.onnx`, `model.int8.onnx`,
`model.compact.int8.onnx`, `model.deploy.onnx`).
"""

from __future__ import annotations

from enum import Enum


class ExportFormat(str, Enum):
    dense = "dense"
    sparse = "sparse"
    compact = "compact"
    int8 = "int8"
    auto = "auto"


class Int8Mode(str, Enum):
    dynamic = "dynamic"  # weights int8 ahead of time, activations quantized per batch
    static = "static"  # activations' ranges calibrated on training samples


DENSE, SPARSE, COMPACT, INT8, COMPACT_INT8, DEPLOY = (
    "dense", "sparse", "compact", "int8", "compact.int8", "deploy",
)  # fmt: skip
QUANTIZED = {INT8, COMPACT_INT8}


def variants_for(formats: list[ExportFormat]) -> list[str]:
    """Variants in build order; int8 applies to the dense graph and, if asked for, the compact one."""
    chosen = set(formats)
    order = [
        (DENSE, ExportFormat.dense in chosen),
        (COMPACT, ExportFormat.compact in chosen),
        (INT8, ExportFormat.int8 in chosen),
        (COMPACT_INT8, ExportFormat.int8 in chosen and ExportFormat.compact in chosen),
        (SPARSE, ExportFormat.sparse in chosen),
        (DEPLOY, ExportFormat.auto in chosen),
    ]
    return [v for v, wanted in order if wanted]
