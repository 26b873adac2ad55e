"""Every variant of `export.formats` from one trained model (`deploy` comes after the bench)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from paiexport.data import DataSplits
from paiexport.export.compact import compact_model, max_abs_diff
from paiexport.export.config import ExportConfig
from paiexport.export.metadata import INT8, INT8_FORMAT, VARIANT, input_vocab
from paiexport.export.quantize import resolve_int8_mode, to_int8
from paiexport.export.residual_sum import residual_sums
from paiexport.export.space_to_depth import space_to_depth
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.export.transforms import set_metadata, to_sparse_initializers
from paiexport.export.variants import Int8Mode, variants_for
from paiexport.inputs import take, to_numpy
from paiexport.paths import RunPaths
from paiexport.variant import Variant


@dataclass
class ExportedVariants:
    """The files of a run (every variant but `deploy`), what compaction did and which int8."""

    files: dict[Variant, Path]
    compact: dict[str, Any] | None = None
    int8_used: dict[str, Any] | None = None  # `int8_choice`, when an int8 file was written
    residual_sums: int = 0  # Adds before a LayerNormalization written as Sum in model.onnx


def float_graph(model: nn.Module, example: Any, config: ExportConfig) -> tuple[onnx.ModelProto, int]:
    """`model` as ONNX with the export's graph rewrites: residual sums unless
    `fuse_skip_layernorm` (see `residual_sum.py`), and how many were rewritten."""
    graph = to_onnx(model, example, config.opset, config.dynamic_axes)
    return (graph, 0) if config.fuse_skip_layernorm else residual_sums(graph)


def int8_choice(dense: onnx.ModelProto, config: ExportConfig) -> dict[str, Any]:
    """The int8 `config.int8` stands for on the float graph `dense` (`auto` resolved), the
    format it is written in (None for dynamic: it has one form) and why."""
    mode, reason = resolve_int8_mode(dense, config.int8)
    written = config.int8_format.value if mode is Int8Mode.static else None
    return {"mode": mode.value, "format": written, "reason": reason}


def compact_variant(
    model: nn.Module, dense: onnx.ModelProto, config: ExportConfig, data: DataSplits, metadata: dict[str, str]
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The compact graph and what compaction did (parameters, max abs diff vs the masked model)."""
    example = data.example()
    result = compact_model(model, example)
    diff = max_abs_diff(model, result.model, data.test.x)
    info = {
        "params_before": result.params_before,
        "params_after": result.params_after,
        "torch_max_abs_diff": diff,
    }
    # Nothing to remove (typical of unstructured masks): ship the dense graph itself, so the
    # compact file is never slower than model.onnx and equal to it bit for bit.
    shrunk = result.params_after < result.params_before
    graph = float_graph(result.model, example, config)[0] if shrunk else dense
    if shrunk and config.space_to_depth:
        graph, info["space_to_depth_convs"] = space_to_depth(graph, config.space_to_depth)
    tags = {
        **metadata,
        "paiexport.variant": Variant.compact.value,
        "paiexport.compact_max_abs_diff": str(diff),
    }
    return set_metadata(graph, tags), info


def int8_variants(
    dense: onnx.ModelProto,
    compact: onnx.ModelProto | None,
    config: ExportConfig,
    data: DataSplits,
    int8_used: dict[str, Any],
    wanted: list[Variant],
) -> dict[Variant, onnx.ModelProto]:
    """int8 of the dense graph and, when written, of the compact one, as `int8_used` says."""
    mode, written = Int8Mode(int8_used["mode"]), int8_used["format"]
    calibration = to_numpy(take(data.train.x, slice(None, config.calibration_samples)))
    quantized: dict[bytes, onnx.ModelProto] = {}  # graph -> int8 graph: calibrate each graph once
    out: dict[Variant, onnx.ModelProto] = {}
    for variant, source in ((Variant.int8, dense), (Variant.compact_int8, compact)):
        if variant in wanted and source is not None:
            graph = source.graph.SerializeToString()  # compact is the dense graph when nothing shrank
            if graph not in quantized:
                threads, narrow = torch.get_num_threads(), config.int8_min_channels
                quantized[graph] = to_int8(source, mode, calibration, threads, narrow, config.int8_format)
            tags = {p.key: p.value for p in source.metadata_props}
            tags.update({VARIANT: variant.value, INT8: mode.value})
            if written is not None:
                tags[INT8_FORMAT] = written
            out[variant] = set_metadata(quantized[graph], tags)
    return out


def export_variants(
    model: nn.Module, config: ExportConfig, data: DataSplits, paths: RunPaths, metadata: dict[str, str]
) -> ExportedVariants:
    """Every variant of `config.formats`, each carrying `metadata`; `deploy` comes after the bench."""
    wanted = variants_for(config.formats)
    files: dict[Variant, Path] = {}
    compact_info = None

    def save(variant: Variant, proto: onnx.ModelProto) -> None:
        files[variant] = paths.onnx(variant)
        save_onnx(proto, files[variant])

    metadata = {**metadata, **input_vocab(model, data.test.x)}
    tags = {**metadata, "paiexport.variant": Variant.dense.value}
    graph, sums = float_graph(model, data.example(), config)
    dense = set_metadata(graph, tags)
    if Variant.dense in wanted:
        save(Variant.dense, dense)
    compact = None
    if Variant.compact in wanted:
        compact, compact_info = compact_variant(model, dense, config, data, metadata)
        save(Variant.compact, compact)
    int8_used = None
    if Variant.int8 in wanted:
        int8_used = int8_choice(dense, config)
        for variant, proto in int8_variants(dense, compact, config, data, int8_used, wanted).items():
            save(variant, proto)
    if Variant.sparse in wanted:
        # Sparse storage is the very last transform: later ONNX round trips would drop it.
        tagged = set_metadata(dense, {"paiexport.variant": Variant.sparse.value})
        save(Variant.sparse, to_sparse_initializers(tagged, config.sparse_threshold))
    return ExportedVariants(files, compact_info, int8_used, sums)
