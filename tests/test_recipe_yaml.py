"""User YAML goes through the bounded loader (recipe_yaml): --grid values, --recipe files."""

import pytest
from typer.testing import CliRunner

from paiexport.bench.synthetic import matmul_chain
from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.sweep import parse_grid

# 10**6 values once expanded, in block style (a --grid value is split at commas)
BOMB = "a: &a\n" + "".join("- x\n" for _ in range(10))
BOMB += "".join(f"{c}: &{c}\n" + f"- *{p}\n" * 10 for p, c in zip("abcde", "bcdef", strict=True))
REFUSED = "refused: more than 100000 values once aliases are expanded"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_a_grid_value_alias_bomb_is_refused():
    with pytest.raises(UserError, match=f"^--grid model.args: value {REFUSED}$"):
        parse_grid(f"model.args={BOMB}")


def test_a_grid_value_alias_bomb_exits_2_in_one_line(tmp_path, write_recipe, tiny_recipe_dict):
    recipe = str(write_recipe(tiny_recipe_dict))
    result = invoke("sweep", recipe, "--grid", f"model.args={BOMB}", "--out", str(tmp_path / "s"))
    assert result.exit_code == 2 and REFUSED in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_a_validate_recipe_alias_bomb_exits_2_in_one_line(tmp_path):
    path = matmul_chain(tmp_path / "m.onnx", 1, 40)
    bomb = tmp_path / "recipe.yaml"
    bomb.write_text("data: {name: synthetic}\n" + BOMB)
    result = invoke("validate", str(path), "--recipe", str(bomb))
    assert result.exit_code == 2 and f"--recipe {bomb}: recipe {REFUSED}" in result.output
    assert len(result.output.strip().splitlines()) == 1
