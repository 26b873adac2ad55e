"""The `export:` section: defaults, bounds, and dense always among the formats."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paiexport.export.config import ExportConfig
from paiexport.export.variants import ExportFormat, Int8Format, Int8Mode


def test_defaults_export_every_format_at_opset_18():
    cfg = ExportConfig()
    assert cfg.opset == 18 and cfg.formats == list(ExportFormat)
    # int8 is chosen per graph (static for convolutions, dynamic otherwise), static written as QDQ
    assert cfg.int8 is Int8Mode.auto and cfg.int8_format is Int8Format.qdq
    assert (cfg.sparse_threshold, cfg.space_to_depth, cfg.int8_min_channels) == (0.7, 0, 0)


def test_formats_must_include_dense():
    assert ExportConfig(formats=["dense", "int8"]).formats == [ExportFormat.dense, ExportFormat.int8]
    with pytest.raises(ValidationError, match="must include dense: every other file is measured against it"):
        ExportConfig(formats=["int8", "compact"])
    with pytest.raises(ValidationError, match="formats"):
        ExportConfig(formats=[])


@pytest.mark.parametrize(
    "fields",
    [
        {"opset": 16},
        {"opset": 22},
        {"opset": True},
        {"sparse_threshold": 1.5},
        {"calibration_samples": 0},
        {"int8": "fast"},
        {"int8_format": "qgemm"},
    ],
)
def test_out_of_range_values_are_refused(fields):
    with pytest.raises(ValidationError, match=next(iter(fields))):
        ExportConfig(**fields)
