"""sweep.json: the plan of a whole sweep, written once and read back by `sweep --collect`."""

from __future__ import annotations

import json

import pytest
import yaml
from tiny import TINY_RECIPE

from paiexport.errors import UserError
from paiexport.recipe import validate_recipe
from paiexport.sweep.plan import PlannedRun
from paiexport.sweep.plan_file import PLAN_FILE, read_plan, write_plan


def finished(out, name: str, seed: int) -> PlannedRun:
    """A planned run whose folder holds its recipe.yaml and a report.json of that recipe."""
    raw = {**TINY_RECIPE, "seed": seed}
    run = PlannedRun(name, {"seed": seed}, validate_recipe(raw, "r.yaml"))
    (out / name).mkdir(parents=True)
    (out / name / "recipe.yaml").write_text(yaml.safe_dump(raw))
    (out / name / "report.json").write_text(json.dumps({"recipe_hash": run.recipe.digest()}))
    return run


def test_round_trip(tmp_path):
    runs = [finished(tmp_path, "seed=0", 0), finished(tmp_path, "seed=1", 1)]
    write_plan(runs, ["train.epochs"], "tiny sweep", tmp_path)
    assert json.loads((tmp_path / PLAN_FILE).read_text()) == {
        "title": "tiny sweep",
        "extra_keys": ["train.epochs"],
        "runs": [
            {"name": "seed=0", "assignments": {"seed": 0}},
            {"name": "seed=1", "assignments": {"seed": 1}},
        ],
    }
    back, extra_keys, title = read_plan(tmp_path)
    assert (extra_keys, title) == (["train.epochs"], "tiny sweep")
    assert [(r.name, r.assignments, r.recipe.digest()) for r in back] == [
        (r.name, r.assignments, r.recipe.digest()) for r in runs
    ]


def test_a_folder_without_a_plan_is_not_a_sweep(tmp_path):
    with pytest.raises(UserError, match=r"^--collect .*: no sweep.json \(not a sweep folder\)$"):
        read_plan(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"runs": [], "title": "t"}',
        '{"runs": {}, "extra_keys": [], "title": "t"}',
        '{"runs": [], "extra_keys": [1], "title": "t"}',
        '{"runs": [{"name": "../x", "assignments": {}}], "extra_keys": [], "title": "t"}',
        '{"runs": [{"name": "a/b", "assignments": {}}], "extra_keys": [], "title": "t"}',
        '{"runs": [{"name": "a", "assignments": []}], "extra_keys": [], "title": "t"}',
    ],
)
def test_a_plan_of_the_wrong_shape_is_refused(tmp_path, text):
    (tmp_path / PLAN_FILE).write_text(text)
    with pytest.raises(UserError) as caught:
        read_plan(tmp_path)
    assert str(caught.value) == f"{tmp_path / PLAN_FILE}: not a sweep plan written by paiexport sweep"


def test_unfinished_runs_are_listed(tmp_path):
    runs = [finished(tmp_path, "a", 0)]
    names = ["b", "c", "d", "e"]
    runs += [PlannedRun(n, {"seed": 0}, runs[0].recipe) for n in names]
    write_plan(runs, [], "t", tmp_path)
    with pytest.raises(UserError) as caught:
        read_plan(tmp_path)
    assert (
        str(caught.value)
        == f"--collect {tmp_path}: 4 of 5 runs not finished (b, c, d, ...); run the missing shards first"
    )


def test_a_run_folder_of_another_recipe_is_refused(tmp_path):
    run = finished(tmp_path, "a", 0)
    write_plan([run], [], "t", tmp_path)
    (tmp_path / "a" / "recipe.yaml").write_text(yaml.safe_dump({**TINY_RECIPE, "seed": 7}))
    with pytest.raises(UserError, match="holds a run of a different recipe"):
        read_plan(tmp_path)
