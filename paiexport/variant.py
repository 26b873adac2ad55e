"""The exported variants of a run: each one's report.json key, file name and flags.

A leaf module so that `paths` (which names the files) and `export` (which builds them) share
one definition. Members are in build order; `str(v)` and JSON give the report key.
"""

from __future__ import annotations

from enum import StrEnum


class Variant(StrEnum):
    dense = "dense"
    compact = "compact"
    int8 = "int8"
    compact_int8 = "compact.int8"
    sparse = "sparse"
    deploy = "deploy"  # a copy of the variant `auto` chose

    @property
    def file_name(self) -> str:
        return "model.onnx" if self is Variant.dense else f"model.{self.value}.onnx"

    @property
    def quantized(self) -> bool:
        """Int8 files are lossy: judged by their accuracy drop, not by output parity."""
        return self in (Variant.int8, Variant.compact_int8)

    @property
    def is_float(self) -> bool:
        return not self.quantized

    @property
    def sparse_storage(self) -> bool:
        """Sparse initializers: onnxruntime densifies them at load, so never faster."""
        return self is Variant.sparse

    @property
    def deploy_candidate(self) -> bool:
        """May `auto` ship it as model.deploy.onnx (not the sparse file, not the copy itself)."""
        return not (self.sparse_storage or self is Variant.deploy)
