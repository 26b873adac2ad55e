"""The dense baseline: known by its attribute, not its name."""

from paiexport.methods import BASELINE_METHOD, METHODS, is_baseline
from paiexport.recipe import validate_recipe


def test_the_dense_method_is_known_by_its_attribute(tiny_recipe_dict, monkeypatch):
    assert [n for n, cls in METHODS.items() if not cls.prunes] == ["dense"] == [BASELINE_METHOD]
    assert is_baseline("dense") and not is_baseline("snip") and not is_baseline(["dense"])
    raw = {**tiny_recipe_dict, "method": {"name": "dense"}, "sparsity": {"target": 0.5}}
    assert validate_recipe(raw, "r").effective_target() == 0.0
    monkeypatch.setattr(METHODS["dense"], "prunes", True)  # the attribute decides, not the name
    assert validate_recipe(raw, "r").effective_target() == 0.5
