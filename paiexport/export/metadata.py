"""The `metadata_props` every exported file carries: one owner for the `paiexport.*` keys."""

from __future__ import annotations

from typing import Any

import onnx

PREFIX = "paiexport."
VARIANT = f"{PREFIX}variant"
INT8 = f"{PREFIX}int8"
DEPLOY_SOURCE = f"{PREFIX}deploy_source"
COMPACT_MAX_ABS_DIFF = f"{PREFIX}compact_max_abs_diff"
SEED = f"{PREFIX}seed"


def tagged(values: dict[str, Any]) -> dict[str, str]:
    """`{"method": "snip"}` -> `{"paiexport.method": "snip"}` (ONNX metadata values are strings)."""
    return {f"{PREFIX}{key}": str(value) for key, value in values.items()}


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}
