"""Strings that are types: the Variant enum, the dense method's attribute, typed overrides."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paiexport.bench.settings import BenchSettings
from paiexport.cli import app
from paiexport.cli.overrides import parse_override
from paiexport.errors import UserError
from paiexport.export.variants import ExportFormat, variants_for
from paiexport.methods import BASELINE_METHOD, METHODS, is_baseline
from paiexport.paths import RunPaths
from paiexport.recipe import Override, Recipe, apply_overrides, validate_recipe
from paiexport.variant import Variant


def test_variant_file_names_and_report_keys():
    names = {v.value: v.file_name for v in Variant}
    assert names == {
        "dense": "model.onnx",
        "compact": "model.compact.onnx",
        "int8": "model.int8.onnx",
        "compact.int8": "model.compact.int8.onnx",
        "sparse": "model.sparse.onnx",
        "deploy": "model.deploy.onnx",
    }
    assert RunPaths(Path("r")).onnx(Variant.compact_int8) == Path("r/model.compact.int8.onnx")
    # report.json keys and values stay the plain names
    assert json.dumps({Variant.compact_int8: Variant.int8}) == '{"compact.int8": "int8"}'
    assert f"{Variant.compact_int8}" == "compact.int8"


def test_variant_flags():
    assert {v.value for v in Variant if v.quantized} == {"int8", "compact.int8"}
    assert {v.value for v in Variant if v.is_float} == {"dense", "compact", "sparse", "deploy"}
    assert {v.value for v in Variant if v.deploy_candidate} == {"dense", "compact", "int8", "compact.int8"}
    assert [v for v in Variant if v.sparse_storage] == [Variant.sparse]


def test_variants_for_gives_members_in_build_order():
    chosen = variants_for([ExportFormat.auto, ExportFormat.int8, ExportFormat.dense])
    assert chosen == [Variant.dense, Variant.int8, Variant.deploy]
    assert all(type(v) is Variant for v in chosen)


def test_the_dense_method_is_known_by_its_attribute(tiny_recipe_dict, monkeypatch):
    assert [n for n, cls in METHODS.items() if not cls.prunes] == ["dense"] == [BASELINE_METHOD]
    assert is_baseline("dense") and not is_baseline("snip") and not is_baseline(["dense"])
    raw = {**tiny_recipe_dict, "method": {"name": "dense"}, "sparsity": {"target": 0.5}}
    assert validate_recipe(raw, "r").effective_target() == 0.0
    monkeypatch.setattr(METHODS["dense"], "prunes", True)  # the attribute decides, not the name
    assert validate_recipe(raw, "r").effective_target() == 0.5


def test_overrides_are_typed_values():
    raw = {"train": {"epochs": 3}, "name": "x"}
    shared = [1, 2]
    done = apply_overrides(
        raw, [Override(("train", "epochs"), "4"), Override(("bench", "batch_sizes"), shared)]
    )
    assert done == {"train": {"epochs": "4"}, "name": "x", "bench": {"batch_sizes": [1, 2]}}  # no parsing
    done["bench"]["batch_sizes"].append(3)
    assert shared == [1, 2] and raw == {"train": {"epochs": 3}, "name": "x"}
    assert parse_override("bench.batch_sizes=[2, 4]") == Override(("bench", "batch_sizes"), [2, 4])
    assert parse_override("name=007") == Override(("name",), 7)  # YAML, in the CLI only
    with pytest.raises(UserError, match=r"--set train\.epochs: train is not a section"):
        apply_overrides({"train": 1}, [Override(("train", "epochs"), 1)])


def test_one_bench_settings_type_for_recipe_and_cli(tmp_path):
    assert Recipe.model_fields["bench"].annotation is BenchSettings
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "a.onnx"), "--batch-sizes", "70000"])
    assert result.exit_code == 2
    assert "--batch-sizes: Input should be less than or equal to 65536" in result.output
