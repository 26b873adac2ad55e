"""The `paiexport.*` metadata_props of exported files: tagged keys and the input normalization."""

from __future__ import annotations

from onnx import TensorProto, helper

from paiexport.export.metadata import (
    INPUT_MEAN,
    INPUT_STD,
    input_normalization,
    read_metadata,
    read_normalization,
    tagged,
)


def test_tagged_prefixes_keys_and_makes_values_strings():
    assert tagged({"method": "snip", "seed": 3, "target": 0.9}) == {
        "paiexport.method": "snip",
        "paiexport.seed": "3",
        "paiexport.target": "0.9",
    }


def test_normalization_round_trip():
    props = input_normalization((0.5, 0.25), (2, 0.125))
    assert props == {INPUT_MEAN: "0.5,0.25", INPUT_STD: "2.0,0.125"}
    assert read_normalization(props) == ((0.5, 0.25), (2.0, 0.125))
    third = 1 / 3
    assert read_normalization(input_normalization((third,), (third,))) == ((third,), (third,))  # repr: exact


def test_no_normalization_and_unreadable_values_read_as_none():
    assert input_normalization(None, (1.0,)) == {} and input_normalization((0.0,), None) == {}
    assert read_normalization({}) is None
    assert read_normalization({INPUT_MEAN: "0.5"}) is None
    assert read_normalization({INPUT_MEAN: "0.5,x", INPUT_STD: "1.0"}) is None


def test_read_metadata_of_a_model():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    assert read_metadata(model) == {}
    helper.set_model_props(model, {**tagged({"variant": "dense"}), "other": "kept"})
    assert read_metadata(model) == {"paiexport.variant": "dense", "other": "kept"}
