"""Every variant of `export.formats` from one model: which files, which graph each holds, its tags.

The ONNX exporter itself is tested in test_torch_export.py; here `to_onnx` is the fast legacy
exporter (the dynamo one takes seconds per call), so the tests see which graphs build.py asks for.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import paiexport.export.build as build
from paiexport.data.splits import DataSplits, Split
from paiexport.export.build import export_variants
from paiexport.export.config import ExportConfig
from paiexport.paths import RunPaths
from paiexport.variant import Variant

TAGS = {"paiexport.recipe": "tiny"}


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> list[nn.Module]:
    """`build.to_onnx` as the legacy exporter (one float input, as `to_onnx` names it); the list
    collects every model it exported."""
    seen: list[nn.Module] = []

    def fast(model: nn.Module, example: torch.Tensor, opset: int, dynamic_axes=None) -> onnx.ModelProto:
        seen.append(model)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(),
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}},
            )
        return onnx.load_from_string(buffer.getvalue())

    monkeypatch.setattr(build, "to_onnx", fast)
    return seen


def mlp(dead: list[int]) -> nn.Module:
    """Linear(6, 8) -> ReLU -> Linear(8, 3) (83 parameters) with the `dead` hidden units' rows zero."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        model[0].weight[dead] = 0
    return model


def data() -> DataSplits:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g))
    return DataSplits(split, split, split, input_shape=(6,), num_classes=3)


def export(model: nn.Module, folder: Path, **config: object) -> build.ExportedVariants:
    return export_variants(model, ExportConfig.model_validate(config), data(), RunPaths(folder), TAGS)


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def shapes(path: Path) -> dict[str, list[int]]:
    return {t.name: list(t.dims) for t in onnx.load(str(path)).graph.initializer}


def test_every_variant_is_written_with_its_tags(tmp_path, exported) -> None:
    result = export(mlp(dead=[1, 5]), tmp_path, sparse_threshold=0.2)
    wanted = [Variant.dense, Variant.compact, Variant.int8, Variant.compact_int8, Variant.sparse]
    assert list(result.files) == wanted  # `auto` (deploy) is chosen after the bench
    assert result.files == {v: RunPaths(tmp_path).onnx(v) for v in wanted}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(v.file_name for v in wanted)
    assert [metadata(result.files[v])["paiexport.variant"] for v in wanted] == [v.value for v in wanted]
    assert all(metadata(p)["paiexport.recipe"] == "tiny" for p in result.files.values())
    assert metadata(result.files[Variant.int8])["paiexport.int8"] == "dynamic"
    diff = metadata(result.files[Variant.compact])["paiexport.compact_max_abs_diff"]
    assert metadata(result.files[Variant.compact_int8])["paiexport.compact_max_abs_diff"] == diff
    assert result.compact == {
        "params_before": 83,
        "params_after": 36 + 6 + 18 + 3,
        "torch_max_abs_diff": float(diff),
    }
    assert float(diff) < 1e-6 and len(exported) == 2  # the masked model, then the compact one


def test_the_compact_file_holds_only_the_kept_units(tmp_path, exported) -> None:
    result = export(mlp(dead=[1, 5]), tmp_path, formats=["dense", "compact"])
    assert shapes(result.files[Variant.dense])["0.weight"] == [8, 6]
    assert shapes(result.files[Variant.compact]) == {
        "0.weight": [6, 6],
        "0.bias": [6],
        "2.weight": [3, 6],
        "2.bias": [3],
    }


def test_sparse_storage_is_the_dense_graph_with_sparse_initializers(tmp_path, exported) -> None:
    result = export(mlp(dead=[1, 5]), tmp_path, formats=["dense", "sparse"], sparse_threshold=0.2)
    sparse = onnx.load(str(result.files[Variant.sparse]))
    assert [t.values.name for t in sparse.graph.sparse_initializer] == ["0.weight"]  # 25% zero
    dense = {
        t.name: numpy_helper.to_array(t)
        for t in onnx.load(str(result.files[Variant.dense])).graph.initializer
    }
    stored = sparse.graph.sparse_initializer[0]
    assert stored.values.dims == [36]  # 48 weights, 12 of them zero
    assert np.count_nonzero(dense["0.weight"]) == 36
    assert metadata(result.files[Variant.sparse]) == {**TAGS, "paiexport.variant": "sparse"}


def test_only_the_asked_formats_are_written(tmp_path, exported) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = export(mlp(dead=[1]), tmp_path / "a", formats=["dense"])
    assert list(result.files) == [Variant.dense] and result.compact is None
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["model.onnx"]
    result = export(mlp(dead=[1]), tmp_path / "b", formats=["dense", "int8"])
    assert list(result.files) == [Variant.dense, Variant.int8] and result.compact is None
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["model.int8.onnx", "model.onnx"]


def test_an_unshrunk_compact_graph_is_the_dense_one_quantized_once(tmp_path, exported, monkeypatch) -> None:
    """Unstructured masks leave no channel dead: compact is the dense graph, int8 made once."""
    calls = []
    real = build.to_int8
    monkeypatch.setattr(build, "to_int8", lambda *a, **k: calls.append(a[2].shape) or real(*a, **k))
    result = export(
        mlp(dead=[]), tmp_path, formats=["dense", "compact", "int8"], int8="static", calibration_samples=20
    )
    assert result.compact["params_after"] == result.compact["params_before"] == 83
    assert calls == [(20, 6)] and len(exported) == 1  # calibrated on 20 training samples, once
    graph = {v: onnx.load(str(p)).graph.SerializeToString() for v, p in result.files.items()}
    assert (
        graph[Variant.compact] == graph[Variant.dense] and graph[Variant.compact_int8] == graph[Variant.int8]
    )
    meta = metadata(result.files[Variant.compact_int8])
    assert meta["paiexport.variant"] == "compact.int8" and meta["paiexport.int8"] == "static"
    assert "paiexport.compact_max_abs_diff" in meta


def test_a_shrunk_compact_graph_is_quantized_on_its_own(tmp_path, exported, monkeypatch) -> None:
    calls = []
    real = build.to_int8
    monkeypatch.setattr(build, "to_int8", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = export(mlp(dead=[0]), tmp_path, formats=["dense", "compact", "int8"])
    assert len(calls) == 2
    assert shapes(result.files[Variant.compact_int8])["0.bias"] == [7]
    assert shapes(result.files[Variant.int8])["0.bias"] == [8]


class Residual(nn.Module):
    """LayerNorm(x + Linear(x)) -> Linear: one residual Add that feeds a LayerNormalization."""

    def __init__(self) -> None:
        super().__init__()
        self.inner, self.norm, self.head = nn.Linear(6, 6), nn.LayerNorm(6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x + self.inner(x)))


def residual_op(path: Path) -> str:
    """The op type of the node whose output the file's LayerNormalization reads."""
    nodes = onnx.load(str(path)).graph.node
    (norm,) = [n for n in nodes if n.op_type == "LayerNormalization"]
    return next(n.op_type for n in nodes if norm.input[0] in n.output)


@pytest.mark.parametrize("fuse", [False, True])
def test_residual_adds_before_a_layernorm_are_sums_unless_fusion_is_asked_for(
    tmp_path, exported, fuse
) -> None:
    torch.manual_seed(0)
    result = export(Residual().eval(), tmp_path, formats=["dense", "int8"], fuse_skip_layernorm=fuse)
    assert result.residual_sums == (0 if fuse else 1)
    for variant in (Variant.dense, Variant.int8):
        assert residual_op(result.files[variant]) == ("Add" if fuse else "Sum"), variant
