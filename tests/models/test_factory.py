"""model.name "package.module:callable": default args injection and every bad input as one line, exit 2."""

from __future__ import annotations

import pytest
import torch
import yaml
from clitest import invoke, one_line_error
from torch import nn

from paiexport.errors import UserError
from paiexport.models.factory import build_factory_model

BAD = """
import torch
from torch import nn

NOT_CALLABLE = 3

def raises(num_classes):
    raise ValueError("width must be even\\nsecond line")

def not_a_module():
    return 42

def wrong_output(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1], num_classes + 1))

class NoWeights(nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 4)

def no_prunable():
    return NoWeights()

def seen(num_classes, in_channels, input_shape, hidden=3):
    width = in_channels * input_shape[-1]
    return nn.Sequential(nn.Flatten(), nn.Linear(width, hidden), nn.Linear(hidden, num_classes))

def needs_images(num_classes):
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, num_classes))
"""


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "badnets.py").write_text(BAD)
    return tmp_path


def test_data_values_are_injected_unless_args_give_them(model_dir):
    model = build_factory_model("badnets:seen", {}, (1, 40), 4, [model_dir])
    assert [tuple(m.weight.shape) for m in model if isinstance(m, nn.Linear)] == [(3, 40), (4, 3)]
    model = build_factory_model("badnets:seen", {"hidden": 5, "num_classes": 7}, (1, 40), 4, [model_dir])
    assert model(torch.zeros(2, 1, 40)).shape == (2, 7)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("nowhere_pkg.nets:net", {}, "model.name: module 'nowhere_pkg' not found"),
        ("badnets:missing", {}, "model.name: module 'badnets' has no attribute 'missing'"),
        ("badnets:NOT_CALLABLE", {}, "model.name: badnets:NOT_CALLABLE is a int, not callable"),
        ("badnets:raises", {}, "model.args: badnets:raises raised ValueError: width must be even"),
        ("badnets:seen", {"depth": 2}, "model.args: badnets:seen raised TypeError"),
        (
            "badnets:not_a_module",
            {},
            "model.name: badnets:not_a_module returned a int, not a torch nn.Module",
        ),
        (
            "badnets:wrong_output",
            {},
            "model.name: output (2, 5) on a sample batch of (2, 1, 40), expected (2, 4)",
        ),
        ("badnets:no_prunable", {}, "model.name: badnets:no_prunable has no prunable layer"),
        ("badnets:needs_images", {}, "model.args: the model fails on a sample batch"),
        ("badnets", {}, "model.name: unknown model 'badnets'"),
    ],
)
def test_bad_factories_exit_2_naming_the_field(model_dir, tiny_recipe_dict, name, args, message):
    tiny_recipe_dict["model"] = {"name": name, "args": args}
    path = model_dir / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict))
    one_line_error(invoke("run", path, "--out", model_dir / "run"), message)
    assert not (model_dir / "run").exists()


@pytest.mark.parametrize("package", ["torchvision", "timm"])
def test_shorthands(package, tmp_path):
    pytest.importorskip(package, reason=f"{package} is not installed (its wheels need the CUDA torch)")
    name = "resnet18" if package == "torchvision" else "resnet10t"
    model = build_factory_model(f"{package}:{name}", {}, (3, 32, 32), 7, [tmp_path])
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_shorthand_without_the_package_names_it(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed
    with pytest.raises(UserError, match=r"model.name: torchvision:resnet18 needs torchvision installed"):
        build_factory_model("torchvision:resnet18", {}, (3, 32, 32), 7, [tmp_path])
