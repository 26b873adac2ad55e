"""The runs of a sweep: the Cartesian product of recipe values x seeds, plus dense baselines.

Every run is planned and validated before the first one starts (a bad grid value fails at
once). Each sweep also runs the dense baseline once per seed (and per value of any other
axis), so the accuracy of every method and sparsity sits next to dense. `--shard i/n` keeps
every n-th run of the plan.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

import yaml

from paiexport import recipe_yaml
from paiexport.errors import UserError, shorten
from paiexport.methods import BASELINE_METHOD, is_baseline
from paiexport.recipe import Override, Recipe, apply_overrides, validate_recipe

METHOD_KEY, TARGET_KEY, SEED_KEY = "method.name", "sparsity.target", "seed"


@dataclass(frozen=True)
class GridAxis:
    key: str  # dotted recipe field
    values: tuple[Any, ...]  # parsed as YAML, like --set


def parse_grid(text: str) -> GridAxis:
    """'method.name=snip,grasp' -> GridAxis('method.name', ('snip', 'grasp'))."""
    key, sep, values = text.partition("=")
    parts = [v.strip() for v in values.split(",")]
    if not sep or not key.strip() or not all(parts):
        raise UserError(f"--grid {text!r}: expected dotted.key=value1,value2,...")
    if key.strip() == SEED_KEY:
        raise UserError("--grid seed: use --seeds N instead")
    try:
        return GridAxis(key.strip(), tuple(recipe_yaml.safe_load(v) for v in parts))
    except recipe_yaml.RecipeYAMLError as exc:
        raise UserError(f"--grid {shorten(key)}: value refused: {exc}") from None
    except yaml.YAMLError:
        raise UserError(f"--grid {shorten(key)}: a value is not valid YAML") from None


@dataclass(frozen=True)
class PlannedRun:
    name: str  # folder name inside the sweep folder
    assignments: dict[str, Any]  # grid key -> value, and "seed"
    recipe: Recipe


def _folder_name(assignments: dict[str, Any]) -> str:
    """Readable and unique: when sanitizing changes the text (["out.*"] and ["out.?"] both
    become -out.---), a short hash of the exact values keeps the folders apart."""
    text = "__".join(f"{k}={v}" for k, v in assignments.items())
    name = "".join(c if c.isalnum() or c in "._=-" else "-" for c in text)
    if name != text:
        exact = json.dumps(list(assignments.items()), sort_keys=True, default=str).encode()
        name += "-" + hashlib.sha256(exact).hexdigest()[:8]
    return name


def _run_raw(base: dict[str, Any], assignments: dict[str, Any]) -> dict[str, Any]:
    raw = json.loads(json.dumps(base))
    method = assignments.get(METHOD_KEY)
    if method is not None and method != raw.get("method", {}).get("name"):
        raw["method"] = {"name": method}  # another method's options would be unknown fields
    return apply_overrides(raw, [Override(tuple(k.split(".")), v) for k, v in assignments.items()])


def plan_sweep(
    raw: dict[str, Any], source: str, grid: list[GridAxis], seeds: int, overrides: list[Override]
) -> list[PlannedRun]:
    """Every run of the sweep (grid x seeds, plus dense baselines), validated, in order."""
    keys = [axis.key for axis in grid]
    if len(set(keys)) != len(keys):
        raise UserError("--grid: the same key is given twice")
    base = apply_overrides(raw, overrides)
    first_seed = validate_recipe(base, source).seed
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(a.values for a in grid))]
    dense = [{**{k: v for k, v in c.items() if k != TARGET_KEY}, METHOD_KEY: BASELINE_METHOD} for c in combos]
    if METHOD_KEY not in keys and is_baseline(base.get("method", {}).get("name")):
        dense = []  # every run already is the dense baseline
    planned: dict[str, PlannedRun] = {}
    for combo in [*combos, *dense]:
        if is_baseline(combo.get(METHOD_KEY, base.get("method", {}).get("name"))):
            combo = {k: v for k, v in combo.items() if k != TARGET_KEY}  # dense ignores the target
        for seed in range(first_seed, first_seed + seeds):
            assignments = {**combo, SEED_KEY: seed}
            name = _folder_name(assignments)
            if name in planned and planned[name].assignments != assignments:
                # Same text, different values (1 and "1"): one folder would hold both runs.
                raise UserError(f"--grid: two runs would share the folder {name}; make the values distinct")
            if name not in planned:
                recipe = validate_recipe(_run_raw(base, assignments), f"{source} [{name}]")
                planned[name] = PlannedRun(name, assignments, recipe)
    return list(planned.values())


def extra_axes(grid: list[GridAxis]) -> list[str]:
    """Grid keys other than method and sparsity: they become part of a line's label."""
    return [a.key for a in grid if a.key not in (METHOD_KEY, TARGET_KEY)]


def parse_shard(text: str) -> tuple[int, int]:
    """'1/4' -> (1, 4): the runs whose position modulo 4 is 1 (counting from 0)."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return i, n


def shard(runs: list[PlannedRun], index: int, count: int) -> list[PlannedRun]:
    return runs[index::count]
