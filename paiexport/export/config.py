"""The recipe's `export:` section, typed here so the export layer needs no Recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, field_validator

from paiexport.config import StrictModel
from paiexport.export.variants import ExportFormat, Int8Format, Int8Mode

DeployRuntime = Literal["onnxruntime", "openvino"]  # the names of bench/runtimes' registry


class ExportConfig(StrictModel):
    opset: int = Field(default=18, ge=17, le=21)
    sparse_threshold: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="initializers at least this sparse are stored as sparse initializers",
    )
    formats: list[ExportFormat] = Field(default_factory=lambda: list(ExportFormat), min_length=1)
    int8: Int8Mode = Field(
        default=Int8Mode.auto,
        description="auto: static when the graph has convolutions (dynamic ConvInteger is slower "
        "than float in onnxruntime), dynamic for MatMul/Gemm-only graphs",
    )
    int8_format: Int8Format = Field(
        default=Int8Format.qdq,
        description="how static int8 is written: qdq (standard ONNX, portable) or qoperator "
        "(QLinearConv and onnxruntime's com.microsoft.QGemm)",
    )
    calibration_samples: int = Field(default=300, ge=1, description="training samples for static int8")
    space_to_depth: int = Field(
        default=0,
        ge=0,
        description="in the compact file, stride-1 convolutions with fewer output channels than "
        "this run on 2x2 pixel blocks (an exact relayout: wider, smaller convolutions); 0: off",
    )
    dynamic_axes: dict[str, list[NonNegativeInt]] = Field(
        default_factory=dict,
        description="per ONNX input (named after the model's forward argument), the axes left "
        "dynamic besides the batch (always dynamic), e.g. {input_ids: [0, 1]} for any sequence length",
    )
    int8_min_channels: int = Field(
        default=0,
        ge=0,
        description="ops whose output has fewer channels stay float in int8 files "
        "(onnxruntime's int8 convolutions are slower than float below 16 channels on AVX-512)",
    )
    fuse_skip_layernorm: bool = Field(
        default=False,
        description="false: residual Adds that feed a LayerNormalization are written as Sum, which "
        "onnxruntime does not fuse into com.microsoft.SkipLayerNormalization (its CPU kernel is ~8x "
        "slower than Add + LayerNormalization); true: keep Add (for providers whose fused kernel is fast)",
    )
    deploy_runtime: DeployRuntime = Field(
        default="onnxruntime",
        description="auto deploys the fastest valid file in this runtime (one of bench.runtimes)",
    )

    @field_validator("formats")
    @classmethod
    def _dense_is_the_baseline(cls, formats: list[ExportFormat]) -> list[ExportFormat]:
        if ExportFormat.dense not in formats:
            raise ValueError("must include dense: every other file is measured against it")
        return formats
