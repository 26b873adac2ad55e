from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tiny import TINY_RECIPE


@pytest.fixture
def tiny_recipe_dict() -> dict:
    return yaml.safe_load(yaml.safe_dump(TINY_RECIPE))


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(raw: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    return write
