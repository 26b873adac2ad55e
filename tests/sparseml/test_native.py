"""A SparseML recipe as a native recipe: the dict the loader validates, and the commented YAML
of `recipes convert` that reads back as the same dict."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from paiexport.recipe import validate_recipe
from paiexport.sparseml.native import QUANTIZATION_NOTE, native_yaml, recipe_name, sparseml_to_native

DATA = Path(__file__).parents[1] / "fixtures" / "sparseml"
CONVERTIBLE = ["gmp_groups.yaml", "global_eval.yaml", "constant_multistep.yaml", "resnet20.pruned_quant.md"]


def test_groups_lr_and_epochs_of_a_recipe_with_anchors():
    schedule = {"start_epoch": 1.0, "end_epoch": 7.0, "init_sparsity": 0.05, "update_frequency": 0.5}
    assert sparseml_to_native(DATA / "gmp_groups.yaml") == {
        "name": "gmp_groups",
        "method": {
            "name": "gmp",
            "groups": [
                {
                    "kind": "layer",
                    "params": ["conv1.weight", "fc.weight"],
                    "final_sparsity": 0.7,
                    **schedule,
                    "inter_func": "cubic",
                    "leave_enabled": True,
                },
                {
                    "kind": "layer",
                    "params": ["re:blocks\\.[0-2]\\.conv"],
                    "final_sparsity": 0.85,
                    **schedule,
                    "inter_func": "linear",
                    "leave_enabled": True,
                },
            ],
        },
        "train": {
            "epochs": 10,
            "checkpoint": "last",
            "lr_schedule": {
                "name": "piecewise",
                "segments": [
                    {
                        "kind": "function",
                        "lr_func": "linear",
                        "init_lr": 0.05,
                        "final_lr": 0.005,
                        "start_epoch": 0.0,
                        "end_epoch": 10.0,
                    }
                ],
            },
        },
    }


def test_quantization_becomes_static_int8_with_a_note():
    native = sparseml_to_native(DATA / "resnet20.pruned_quant.md")
    assert native["export"] == {"int8": "static"} and native["method"]["notes"] == [QUANTIZATION_NOTE]
    assert "export" not in sparseml_to_native(DATA / "gmp_groups.yaml")


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_the_commented_yaml_reads_back_as_the_same_valid_recipe(name):
    text = native_yaml(DATA / name)
    assert text.startswith(
        f"# Converted from the SparseML recipe {DATA / name} by `paiexport recipes convert`."
    )
    native = sparseml_to_native(DATA / name)
    assert yaml.safe_load(text) == native
    origins = [line for line in text.splitlines() if line.startswith("    # from ")]
    assert len(origins) == len(native["method"]["groups"]) > 0  # each group says which modifier it is
    validate_recipe(native, name)


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("resnet20.pruned_quant.md", "resnet20.pruned_quant"),
        ("my recipe!.yaml", "my-recipe-"),
        (".hidden.yaml", "hidden"),
        ("___.yaml", "sparseml"),
        ("x" * 300 + ".yaml", "x" * 100),
        ("noext", "noext"),
    ],
)
def test_recipe_names_are_safe_folder_names(file, name):
    assert recipe_name(Path("some/folder") / file) == name
