"""The BERT-style part of `benchmarks/train_compact.py`: one variant of the bert_heads50 recipe.

The recipe's data (recipes/stdlib_text.py), model (BertForSequenceClassification from a config,
here `width` wide in heads of 16 with an FFN 4x as wide), selection (SNIP keeping half the heads
and a quarter of the FFN neurons of every layer, `sparsity.group_targets`) and training
(AdamW, cosine schedule, its batch size), for `epochs` at `seed`; the library's pieces
throughout: `runs.stages.prepare`, `Method.select`, `training.compact.shrink_for_training`,
`training.loop.train`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from paiexport.cli.overrides import parse_overrides
from paiexport.recipe import Recipe, bundled_recipes_dir, load_recipe
from paiexport.runs.stages import prepare
from paiexport.sparsity.masks import attach_masks
from paiexport.training.callbacks import KeepPrunedZero
from paiexport.training.compact import compact_example, shrink_for_training
from paiexport.training.loop import evaluate, train

RECIPE = "bert_heads50"
HEAD_DIM = 16


def bert_recipe(width: int, epochs: int, seed: int) -> Recipe:
    """bert_heads50 at hidden size `width` (heads of 16, FFN 4x), `epochs`, `seed`."""
    config = "model.args.config"
    overrides = [
        f"seed={seed}",
        f"train.epochs={epochs}",
        f"{config}.hidden_size={width}",
        f"{config}.num_attention_heads={width // HEAD_DIM}",
        f"{config}.intermediate_size={4 * width}",
    ]
    return load_recipe(bundled_recipes_dir() / f"{RECIPE}.yaml", parse_overrides(overrides))


def bert_one(variant: str, *, epochs: int, seed: int, width: int) -> tuple[float, float, int]:
    """(seconds per epoch, test accuracy, trained parameters) of dense, masked or compact."""
    recipe = bert_recipe(width, epochs, seed)
    data, model, method, ctx = prepare(recipe)
    if variant != "dense":
        attach_masks(model, method.select(ctx))
    if variant == "compact":
        model = shrink_for_training(model, compact_example(data.train)).model
    with tempfile.TemporaryDirectory(prefix="paiexport-bench-") as tmp:
        start = time.perf_counter()
        train(
            model,
            data,
            recipe.train,
            batch_size=recipe.data.batch_size,
            seed=seed,
            metrics_path=Path(tmp) / "m.jsonl",
            checkpoint_dir=Path(tmp) / "ckpt",
            callbacks=[KeepPrunedZero()] if variant == "masked" else [],
        )
        per_epoch = (time.perf_counter() - start) / max(epochs, 1)
    accuracy = evaluate(model, data.test, task=data.task)[1]["accuracy"]
    return per_epoch, accuracy, sum(p.numel() for p in model.parameters())
