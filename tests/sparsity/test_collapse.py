"""Layer collapse: found, reported in report.json, and fatal unless allowed."""

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.sparsity.collapse import check_collapse, find_collapse


def test_find_collapse_by_hand():
    masks = {
        "a.weight": torch.tensor([[True, False], [False, False], [False, True]]),  # row 1 empty
        "b.weight": torch.zeros(2, 3, dtype=torch.bool),  # the whole layer
        "c.weight": torch.ones(4, 2, 3, dtype=torch.bool),
        "d.weight": torch.tensor([[[False], [False]], [[True], [False]]]),  # conv: channel 0 empty
    }
    assert find_collapse(masks) == {
        "layers": ["b.weight"],
        "output_channels": {"a.weight": [1], "d.weight": [0]},
    }
    with pytest.raises(UserError, match=r"sparsity\.allow_layer_collapse.*b\.weight"):
        check_collapse(masks, allow=False)
    assert check_collapse(masks, allow=True)["layers"] == ["b.weight"]


def net_with_a_tiny_layer(input_shape, num_classes):
    """An MLP whose middle layer is scaled down 1000×: global magnitude at init wipes it out."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(40, 32),
        nn.ReLU(),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Linear(16, num_classes),
    )
    with torch.no_grad():
        net[3].weight.mul_(1e-3)
    return net


@pytest.fixture
def collapsing_recipe(monkeypatch, write_recipe, tiny_recipe_dict):
    monkeypatch.setattr(
        "paiexport.models.factory.build_model",
        lambda name, args, shape, classes: net_with_a_tiny_layer(shape, classes),
    )
    tiny_recipe_dict["method"] = {"name": "magnitude"}
    tiny_recipe_dict["sparsity"] = {"target": 0.9, "distribution": "global"}
    return write_recipe(tiny_recipe_dict)


def test_single_shot_magnitude_collapses_the_small_layer_and_fails(collapsing_recipe, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(collapsing_recipe), "--out", str(out)])
    assert result.exit_code == 2
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.output
    assert "sparsity.allow_layer_collapse" in message and "3.weight" in message
    assert not out.exists()


def test_allowed_collapse_is_reported(collapsing_recipe, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["run", str(collapsing_recipe), "--out", str(out), "--set", "sparsity.allow_layer_collapse=true"],
    )
    # Allowed, so the run is written; a fully pruned layer predicts one class: chance level (exit 1).
    assert result.exit_code == 1 and "(chance_level)" in result.output, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["layer_collapse"]["layers"] == ["3.weight"]
    assert report["sparsity"]["per_layer"]["3.weight"]["reached"] == 1.0
    assert abs(report["sparsity"]["reached"] - 0.9) < 0.005


def test_iterative_synflow_does_not_collapse_what_magnitude_collapses(collapsing_recipe, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", str(collapsing_recipe), "--out", str(out), "--set", "method={name: synflow, rounds: 20}"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["layer_collapse"]["layers"] == []
