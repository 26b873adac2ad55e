"""Whether a sweep's run is complete: a report.json of the very same recipe in its folder."""

from __future__ import annotations

import json

import pytest
from tiny import TINY_RECIPE

from paiexport.errors import UserError
from paiexport.recipe import validate_recipe
from paiexport.sweep.collect import is_complete
from paiexport.sweep.plan import PlannedRun


def planned(name: str = "seed=0", seed: int = 0) -> PlannedRun:
    return PlannedRun(name, {"seed": seed}, validate_recipe({**TINY_RECIPE, "seed": seed}, "r.yaml"))


def test_a_report_of_the_same_recipe_is_complete(tmp_path):
    run = planned()
    assert not is_complete(run, tmp_path)  # no folder
    (tmp_path / run.name).mkdir()
    assert not is_complete(run, tmp_path)  # a folder without a report: not finished
    (tmp_path / run.name / "report.json").write_text("{truncated")
    assert not is_complete(run, tmp_path)
    (tmp_path / run.name / "report.json").write_text(json.dumps({"recipe_hash": run.recipe.digest()}))
    assert is_complete(run, tmp_path)


def test_a_report_of_another_recipe_is_an_error(tmp_path):
    run, other = planned(), planned(seed=1)
    (tmp_path / run.name).mkdir()
    (tmp_path / run.name / "report.json").write_text(json.dumps({"recipe_hash": other.recipe.digest()}))
    with pytest.raises(UserError) as caught:
        is_complete(run, tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / run.name} holds a run of a different recipe; use another --out or remove that folder"
    )
