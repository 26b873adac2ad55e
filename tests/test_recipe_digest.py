"""recipe_digest: 16 hex digits of sha256 over the sorted JSON, later fields at their defaults left out."""

from __future__ import annotations

import hashlib
import json

from paiexport.recipe_digest import HASH_NEUTRAL, recipe_digest


def test_the_digest_is_sha256_of_the_sorted_json():
    recipe = {"name": "r", "seed": 1, "train": {"epochs": 2}}
    expected = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    assert (
        recipe_digest(recipe) == expected == recipe_digest({"train": {"epochs": 2}, "seed": 1, "name": "r"})
    )


def test_later_fields_at_their_defaults_leave_the_digest_alone():
    old = {
        "name": "r",
        "validate": {"max_accuracy_drop": 1.0},
        "gates": {},
        "bench": {},
        "export": {},
        "sparsity": {},
    }
    new = json.loads(json.dumps(old))
    for path, default in HASH_NEUTRAL.items():
        node = new
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = default
    assert recipe_digest(new) == recipe_digest(old)
    new["validate"]["max_metric_drop"] = 0.5  # set: part of the recipe's meaning
    assert recipe_digest(new) != recipe_digest(old)
