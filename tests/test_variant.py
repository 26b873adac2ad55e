"""The Variant enum: each exported file's report.json key, file name and flags."""

import json
from pathlib import Path

from paiexport.paths import RunPaths
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
