"""Pure schedule functions with SparseML's semantics: params resolved against the model's weights."""

from __future__ import annotations

import re

import pytest

from paiexport.errors import UserError
from paiexport.sparseml.schedule import resolve_params

# resnet20's prunable weights (paiexport.models), in model order
NAMES = [
    "conv1.weight",
    *[f"blocks.{b}.conv{c}.weight" for b in range(9) for c in (1, 2)],
    "blocks.3.shortcut.0.weight",
    "blocks.6.shortcut.0.weight",
    "fc.weight",
]


def test_resolve_params_tokens_names_regexes_and_misses() -> None:
    assert resolve_params(["__ALL_PRUNABLE__"], NAMES) == NAMES
    assert resolve_params(["__ALL__"], NAMES) == NAMES
    assert resolve_params(["fc.weight", "re:blocks\\.[78]\\.conv2"], NAMES) == [
        "blocks.7.conv2.weight",
        "blocks.8.conv2.weight",
        "fc.weight",
    ]
    with pytest.raises(UserError, match=re.escape("params: 're:layer1\\..*' matches no prunable weight")):
        resolve_params(["fc.weight", "re:layer1\\..*"], NAMES)
    with pytest.raises(UserError, match=re.escape("'classifier.weight' matches no prunable weight")):
        resolve_params(["classifier.weight"], NAMES)
