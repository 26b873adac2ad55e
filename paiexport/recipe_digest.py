"""A recipe's hash: the short digest that names a recipe in its files, reports and sweeps.

It hashes the validated recipe (stable across key order and formatting), without the fields
added after recipes were first hashed while they hold their defaults: a recipe that does not use
them keeps the hash, and the file bytes, it had.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from paiexport.config import without_defaults
from paiexport.tasks.classification import ClassificationConfig

# Fields added after recipes were first hashed, and their defaults.
HASH_NEUTRAL: dict[tuple[str, ...], object] = {
    ("task",): ClassificationConfig().model_dump(mode="json"),
    ("validate", "max_metric_drop"): None,
    ("gates", "min_metric"): None,
    ("gates", "max_metric_drop"): None,
    ("bench", "runtimes"): ["onnxruntime"],
    ("export", "deploy_runtime"): "onnxruntime",
    ("sparsity", "rules"): [],
    ("export", "dynamic_axes"): {},
    ("sparsity", "group_targets"): {},
    ("bench", "seq_lens"): [],
    ("export", "fuse_skip_layernorm"): False,
}


def recipe_digest(recipe: dict[str, Any]) -> str:
    """16 hex digits of sha256 over the recipe's JSON (`Recipe.to_dict()`), HASH_NEUTRAL fields
    at their defaults left out."""
    blob = json.dumps(without_defaults(recipe, HASH_NEUTRAL), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
