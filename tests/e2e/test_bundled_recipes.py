"""Every bundled sparse recipe reaches its target (shortened to one epoch); a recipe with
`sparsity.group_targets` (the transformer recipes, at a tiny size) removes exactly that share of
the channels of every group of each kind."""

import importlib.util

import pytest
import torch

from paiexport.cli.overrides import parse_overrides
from paiexport.paths import RunPaths
from paiexport.recipe import (
    bundled_recipes_dir,
    load_recipe,
    read_recipe_file,
)
from paiexport.reporting.assemble import planned_layer_sparsity
from paiexport.runs.stages import prepare, recipe_trainer
from paiexport.sparsity.channels import group_kind
from paiexport.sparsity.counts import kept
from paiexport.sparsity.groups import zeroed_members
from paiexport.sparsity.masks import get_masks, layer_sparsity, overall_sparsity, prunable_weights
from paiexport.sparsity.structure import model_graph
from paiexport.sparsity.types import Distribution, StructureKind
from paiexport.threads import torch_threads

SHORT = {"magnitude_after_training": ["method.finetune_epochs=1"]}
TINY_SIZE = [  # the transformer recipes: hidden 32 in 4 heads of 8, FFN 64
    "model.args.config.hidden_size=32",
    "model.args.config.num_attention_heads=4",
    "model.args.config.intermediate_size=64",
]
TINY = {"bert_heads50": TINY_SIZE, "gpt_heads50": [*TINY_SIZE, "model.args.config.num_key_value_heads=4"]}
SPARSE = sorted(p.stem for p in bundled_recipes_dir().glob("*.yaml") if load_recipe(p).effective_target() > 0)
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


@pytest.mark.parametrize("name", SPARSE)
def test_bundled_recipe_reaches_its_target(name, tmp_path):
    path = bundled_recipes_dir() / f"{name}.yaml"
    raw = read_recipe_file(path)
    if name in TINY and not HAS_TRANSFORMERS:
        pytest.skip("needs transformers (pip install 'paiexport[hf]')")
    overrides = ["train.epochs=1", *SHORT.get(raw["method"]["name"], []), *TINY.get(name, [])]
    recipe = load_recipe(path, parse_overrides(overrides))  # the recipe's folder: its data factory
    data, model, method, ctx = prepare(recipe)
    # Tiny transformers' matmuls are slower on two busy threads than on one (as `run` measures).
    with torch_threads(1 if name in TINY else torch.get_num_threads()):
        method.fit(ctx, recipe_trainer(recipe, data, RunPaths(tmp_path)))
    if recipe.sparsity.group_targets:
        each_group_lost_its_share(model, recipe.sparsity.group_targets, data.train.x)
        return
    exclude = recipe.sparsity.exclude
    target = recipe.sparsity.target
    assert abs(overall_sparsity(model, exclude) - target) <= 0.005
    per_layer_targets = recipe.sparsity.structure is StructureKind.unstructured
    if per_layer_targets and recipe.sparsity.distribution is not Distribution.global_:
        planned = planned_layer_sparsity(prunable_weights(model, exclude), recipe.sparsity)
        for layer, reached in layer_sparsity(model, exclude).items():
            assert abs(reached - planned[layer]) <= 0.01, layer


def each_group_lost_its_share(model, targets: dict[str, float], example) -> None:
    """Every prunable group of a named kind keeps max(1, kept(size, share)) channels."""
    masks, seen = get_masks(model), set()
    for group in model_graph(model, example).groups:
        kind = group_kind(group)
        if not group.prunable or kind not in targets:
            continue
        member = zeroed_members(group)[0]  # a producer's rows (q rows for heads)
        rows = masks[f"{member.module}.{member.param}"].movedim(member.dim, 0).flatten(1).any(dim=1)
        assert int(rows.sum()) // member.per == max(1, kept(group.size, targets[kind])), member.module
        seen.add(kind)
    assert seen == set(targets)
