"""The `metadata_props` every exported file carries: one owner for the `paiexport.*` keys."""

from __future__ import annotations

from typing import Any

import onnx

PREFIX = "paiexport."
VARIANT = f"{PREFIX}variant"
INT8 = f"{PREFIX}int8"  # the int8 mode used (static or dynamic; `auto` resolved)
INT8_FORMAT = f"{PREFIX}int8_format"  # static int8 only: qdq or qoperator
DEPLOY_SOURCE = f"{PREFIX}deploy_source"
COMPACT_MAX_ABS_DIFF = f"{PREFIX}compact_max_abs_diff"
SEED = f"{PREFIX}seed"
INPUT_MEAN = f"{PREFIX}input_mean"  # per-channel normalization the inputs need (validate applies it)
INPUT_STD = f"{PREFIX}input_std"


def tagged(values: dict[str, Any]) -> dict[str, str]:
    """`{"method": "snip"}` -> `{"paiexport.method": "snip"}` (ONNX metadata values are strings)."""
    return {f"{PREFIX}{key}": str(value) for key, value in values.items()}


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def input_normalization(mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> dict[str, str]:
    """The normalization keys (comma-separated floats); none when the inputs are used as they are."""
    if mean is None or std is None:
        return {}
    return {
        INPUT_MEAN: ",".join(repr(float(m)) for m in mean),
        INPUT_STD: ",".join(repr(float(s)) for s in std),
    }


def read_normalization(props: dict[str, str]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The (mean, std) a file records, or None (foreign files, runs without normalization)."""
    if INPUT_MEAN not in props or INPUT_STD not in props:
        return None
    try:
        mean = tuple(float(v) for v in props[INPUT_MEAN].split(","))
        std = tuple(float(v) for v in props[INPUT_STD].split(","))
    except ValueError:
        return None
    return mean, std
