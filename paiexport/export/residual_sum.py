"""Residual sums before a LayerNormalization written as ONNX `Sum`, so onnxruntime's CPU provider
keeps the plain ops instead of its slow fused kernel (`export.fuse_skip_layernorm: false`).

onnxruntime's graph optimizer (every level from "extended", on by default) fuses an `Add` whose
output feeds a `LayerNormalization` into `com.microsoft.SkipLayerNormalization`. On the CPU
provider that fused kernel (onnxruntime 1.32) is about 8x slower than the two ops it replaces:
0.44 ms vs 0.055 ms at 128 x 768, measured alone (thread CPU time, 1 thread). In a BERT-base
encoder that is 25 fusions, about 11 ms per batch-1 sequence of 128 in every file alike, so it
caps what removing heads and neurons can show. `Sum` of two tensors is the same operation as
`Add` (elementwise, multidirectional broadcasting, bit-identical results), every runtime reads
it, and onnxruntime does not fuse it. `fuse_skip_layernorm: true` keeps `Add`, for execution
providers whose fused kernel is fast (CUDA).

Only the main graph is rewritten (not the bodies of If/Loop nodes).
"""

from __future__ import annotations

import onnx
from onnx import ModelProto

DEFAULT_DOMAINS = ("", "ai.onnx")


def _feeds_layernorm(model: ModelProto) -> set[str]:
    """Names of the tensors read by a LayerNormalization of the main graph."""
    return {
        node.input[0]
        for node in model.graph.node
        if node.op_type == "LayerNormalization" and node.domain in DEFAULT_DOMAINS and node.input
    }


def residual_sums(model: ModelProto) -> tuple[ModelProto, int]:
    """A copy of `model` whose `Add` nodes that feed a LayerNormalization are `Sum` nodes, and
    how many were rewritten; `model` itself is not changed. The result is checked."""
    out = ModelProto()
    out.CopyFrom(model)
    normalized = _feeds_layernorm(out)
    rewritten = 0
    for node in out.graph.node:
        if node.op_type == "Add" and node.domain in DEFAULT_DOMAINS and node.output[0] in normalized:
            node.op_type = "Sum"
            rewritten += 1
    if rewritten and out.ByteSize() < onnx.checker.MAXIMUM_PROTOBUF:
        onnx.checker.check_model(out)
    return out, rewritten
