"""The test split `paiexport validate` uses: from --data or the run's recipe, prepared as the run did."""

from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from userdata import write_npz

from paiexport.data import DataConfig, load_dataset
from paiexport.data.config import AugmentConfig
from paiexport.errors import UserError
from paiexport.export.metadata import input_normalization
from paiexport.verify.eval_data import eval_split, validation_data


def test_a_dataset_by_name():
    cfg = validation_data("synthetic")
    assert cfg.name == "synthetic" and cfg.augment == AugmentConfig()
    with pytest.raises(UserError, match=r"^--data: give a dataset name \(or --recipe RUN/recipe.yaml\)$"):
        validation_data(None)
    with pytest.raises(UserError, match=r"^--data.name: unknown dataset 'imagenet'"):
        validation_data("imagenet")
    with pytest.raises(UserError, match=r"^--data.* data.path: npz is read from files; give their folder$"):
        validation_data("npz")


def test_the_recipes_data_section_with_its_path_beside_the_recipe(tmp_path):
    write_npz(tmp_path / "d.npz")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: r\ndata: {name: npz, path: d.npz, val_fraction: 0.2, augment: {horizontal_flip: true}}\n"
    )
    cfg = validation_data(None, recipe=recipe)
    assert (cfg.name, cfg.path, cfg.val_fraction) == ("npz", str(tmp_path / "d.npz"), 0.2)
    assert cfg.augment == AugmentConfig()  # test data is never augmented
    assert validation_data("synthetic", recipe=recipe).name == "synthetic"  # --data wins


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: r\n", "has no data section"),
        ("data: [1, 2]\n", "has no data section"),
        ("data: {name: synthetic\n", "cannot read it (ParserError)"),
        ("data: {name: synthetic, val_fraction: 2}\n", "data.val_fraction: Input should be less than 1"),
    ],
)
def test_a_recipe_without_a_usable_data_section_is_named(tmp_path, text, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    with pytest.raises(UserError) as caught:
        validation_data(None, recipe=recipe)
    assert str(caught.value) == f"--recipe {recipe}: {message}"


def graph(shape: list) -> onnx.ModelProto:
    g = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)],
    )
    return helper.make_model(g)


def test_the_files_recorded_normalization_is_applied():
    cfg = DataConfig(name="synthetic", normalize="auto")
    model = graph(["n", 1, 40])
    raw = load_dataset(DataConfig(name="synthetic"), seed=0).test
    assert torch.equal(eval_split(model, DataConfig(name="synthetic"), seed=0).x, raw.x)  # nothing recorded
    helper.set_model_props(model, input_normalization((0.5,), (0.25,)))
    split = eval_split(model, cfg, seed=0)  # the file's values, not the section's `auto`
    assert torch.allclose(split.x, (raw.x - 0.5) / 0.25) and torch.equal(split.y, raw.y)
