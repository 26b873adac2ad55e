"""The exported files: which formats a recipe asks for and the variant each one produces.

The variants themselves (report.json keys, file names, flags) are `paiexport.variant.Variant`.
"""

from __future__ import annotations

from enum import StrEnum

from paiexport.variant import Variant


class ExportFormat(StrEnum):
    dense = "dense"
    sparse = "sparse"
    compact = "compact"
    int8 = "int8"
    auto = "auto"


class Int8Mode(StrEnum):
    auto = "auto"  # static when the graph has convolutions, dynamic otherwise (`resolve_int8_mode`)
    dynamic = "dynamic"  # weights int8 ahead of time, activations quantized per batch
    static = "static"  # activations' ranges calibrated on training samples


class Int8Format(StrEnum):
    """How a static int8 graph is written (dynamic int8 has one form: MatMulInteger/ConvInteger)."""

    qdq = "qdq"  # float ops between QuantizeLinear/DequantizeLinear pairs: standard ONNX only
    qoperator = "qoperator"  # QLinearConv, QLinearMatMul and onnxruntime's com.microsoft.QGemm


def variants_for(formats: list[ExportFormat]) -> list[Variant]:
    """Variants in build order; int8 applies to the dense graph and, if asked for, the compact one."""
    chosen = set(formats)
    wanted = {
        Variant.dense: ExportFormat.dense in chosen,
        Variant.compact: ExportFormat.compact in chosen,
        Variant.int8: ExportFormat.int8 in chosen,
        Variant.compact_int8: ExportFormat.int8 in chosen and ExportFormat.compact in chosen,
        Variant.sparse: ExportFormat.sparse in chosen,
        Variant.deploy: ExportFormat.auto in chosen,
    }
    return [v for v in Variant if wanted[v]]
