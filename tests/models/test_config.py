"""The `model:` section: a bundled name with checked args, or a factory spec (args left to it)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paiexport.models.config import ModelConfig
from paiexport.models.registry import ModelName


def test_bundled_and_factory_names():
    assert ModelConfig().bundled is ModelName.cnn1d
    for spec in ("pkg.mod:build", "mod:_make", "torchvision:resnet18", "timm:vit_tiny_patch16_224.augreg"):
        assert ModelConfig(name=spec).bundled is None


@pytest.mark.parametrize("name", ["resnet50", "1mod:build", "mod:build()", "mod.build", "pkg.mod:"])
def test_unknown_names_list_the_choices(name):
    with pytest.raises(ValidationError) as caught:
        ModelConfig(name=name)
    assert "(choose from cnn1d, lenet5, mlp, resnet20, or package.module:callable)" in str(caught.value)


def test_args_are_checked_for_bundled_models_only():
    with pytest.raises(ValidationError, match=r"args.hidden.0: Input should be greater than or equal to 1"):
        ModelConfig(name="mlp", args={"hidden": [0]})
    assert ModelConfig(name="pkg.mod:build", args={"anything": 1}).args == {"anything": 1}
