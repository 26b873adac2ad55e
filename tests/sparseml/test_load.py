"""Reading a SparseML recipe: YAML or a Markdown card's front matter, variables and eval substituted."""

from __future__ import annotations

from pathlib import Path

import pytest

from paiexport.errors import UserError
from paiexport.sparseml.load import is_sparseml_recipe, load_sparseml

DATA = Path(__file__).parents[1] / "fixtures" / "sparseml"
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_sparseml_recipes_detected_and_native_recipes_never() -> None:
    native = sorted(RECIPES.glob("*.yaml"))
    assert len(native) >= 10
    assert not [p.name for p in native if is_sparseml_recipe(p)]
    assert all(is_sparseml_recipe(p) for p in DATA.iterdir())


def test_variables_anchors_and_eval_are_substituted() -> None:
    recipe = load_sparseml(DATA / "global_eval.yaml")
    assert recipe.variables["pruning_end"] == 5.0  # defined before the variables it uses
    glob = recipe.modifiers[3]
    assert glob.name == "GlobalMagnitudePruningModifier"
    assert glob.fields["params"] == ["re:blocks\\.\\d+\\.conv1\\.weight", "re:blocks.*conv2.weight"]
    assert (glob.fields["end_epoch"], glob.fields["update_frequency"]) == (5.0, 0.5)
    anchored = load_sparseml(DATA / "gmp_groups.yaml").modifiers
    assert [m.fields["start_epoch"] for m in anchored[2:]] == [1.0, 1.0]


def test_markdown_without_front_matter_is_an_error(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("# just a card\n")
    with pytest.raises(UserError, match=r"card\.md: no YAML front matter"):
        load_sparseml(card)


def test_python_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("x: !!python/object/apply:os.system ['true']\nmodifiers: []\n")
    assert not is_sparseml_recipe(path)
    with pytest.raises(UserError, match="not valid YAML"):
        load_sparseml(path)
