"""Structured selection: channel masks from any criterion, N:M groups, typed structure values."""

import itertools

import pytest
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.methods import METHODS, ScoreMethod, SelectionContext, make_method
from paiexport.models import ModelName, build_model
from paiexport.recipe import Recipe, bundled_recipes_dir, load_recipe
from paiexport.sparsity.channels import usable_groups
from paiexport.sparsity.structure import model_graph, nm_masks, select_structured, structure_notes
from paiexport.sparsity.types import NMPattern, SparsityConfig, StructureKind


def rows_kept(mask: torch.Tensor) -> list[int]:
    return mask.reshape(mask.shape[0], -1).any(dim=1).nonzero().flatten().tolist()


def test_structure_is_parsed_once_into_types(tiny_recipe_dict):
    tiny_recipe_dict["sparsity"]["structure"] = "2:4"
    recipe = Recipe.model_validate(tiny_recipe_dict)
    assert recipe.sparsity.structure == NMPattern(n=2, m=4)
    assert recipe.to_dict()["sparsity"]["structure"] == "2:4"  # recipe.yaml round trip
    assert Recipe.model_validate(recipe.to_dict()).sparsity.structure == NMPattern(n=2, m=4)
    tiny_recipe_dict["sparsity"]["structure"] = "channel"
    assert Recipe.model_validate(tiny_recipe_dict).sparsity.structure is StructureKind.channel


@pytest.mark.parametrize("bad", ["4:2", "2:2", "a:4", "2-4", "channels"])
def test_bad_structure_is_one_line_naming_the_field(write_recipe, tiny_recipe_dict, bad):
    tiny_recipe_dict["sparsity"]["structure"] = bad
    path = write_recipe(tiny_recipe_dict)
    with pytest.raises(UserError, match=r"sparsity\.structure") as info:
        load_recipe(path)
    assert "\n" not in str(info.value)


def two_layers(hidden: int, inputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def resnet_scores(resnet: nn.Module) -> dict[str, torch.Tensor]:
    layers = {n: m for n, m in resnet.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    return {f"{n}.weight": m.weight.detach().abs() for n, m in layers.items()}


def test_residual_coupled_channels_are_pruned_together():
    torch.manual_seed(0)
    resnet = build_model(ModelName.resnet20, {"width": 4, "blocks_per_stage": 2}, (3, 16, 16), 10)
    scores, example = resnet_scores(resnet), torch.zeros(2, 3, 16, 16)
    cfg = SparsityConfig(target=0.75, distribution="uniform", structure="channel")
    masks = select_structured(scores, resnet, cfg, example)  # 75% was rejected before (45% prunable)
    kept = lambda n: rows_kept(masks[n])  # noqa: E731
    # the stem feeds the identity shortcuts of stage 1: it and every block's conv2 share channels
    assert kept("conv1.weight") == kept("blocks.0.conv2.weight") == kept("blocks.1.conv2.weight")
    assert 1 <= len(kept("conv1.weight")) < 4 and masks["fc.weight"].all()
    reached = 1 - sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert reached == pytest.approx(0.75, abs=0.05)
    notes = structure_notes(resnet, cfg, scores, example)
    assert "fc (model output: the classifier)" in notes[0] and "residual" in notes[0]


def test_channel_target_too_high_for_prunable_groups_is_user_error():
    model = two_layers(8, 40)  # 320 of 336 weights are in the hidden group
    scores = {"0.weight": torch.rand(8, 40), "2.weight": torch.rand(2, 8)}
    with pytest.raises(UserError, match=r"sparsity\.target.*95\.2%"):
        select_structured(scores, model, SparsityConfig(target=0.96, structure="channel"), torch.zeros(1, 40))
    resnet = build_model(ModelName.resnet20, {"width": 4, "blocks_per_stage": 1}, (3, 16, 16), 10)
    graph = model_graph(resnet, torch.zeros(1, 3, 16, 16))
    assert len(usable_groups(graph, resnet_scores(resnet))) == len(graph.prunable) >= 3


@pytest.mark.parametrize("pattern", [NMPattern(n=2, m=4), NMPattern(n=1, m=4), NMPattern(n=3, m=8)])
def test_nm_masks_have_exactly_n_per_group(pattern):
    g = torch.Generator().manual_seed(0)
    scores = {"lin": torch.rand(6, 16, generator=g), "conv": torch.rand(4, 8, 3, generator=g)}
    masks = nm_masks(scores, pattern)
    lin = masks["lin"].reshape(6, -1, pattern.m)
    assert (lin.sum(dim=-1) == pattern.n).all()
    conv = masks["conv"].movedim(1, -1).reshape(-1, pattern.m)  # groups along input channels
    assert (conv.sum(dim=-1) == pattern.n).all()


def test_nm_keeps_the_highest_of_each_group():
    scores = {"w": torch.tensor([[0.1, 0.9, 0.5, 0.2, 4.0, 3.0, 2.0, 1.0]])}
    assert nm_masks(scores, NMPattern(n=2, m=4))["w"].int().tolist() == [[0, 1, 1, 0, 1, 1, 0, 0]]


def test_nm_leaves_indivisible_layers_dense():
    masks = nm_masks({"first": torch.rand(4, 1, 5)}, NMPattern(n=2, m=4))
    assert masks["first"].all()


AT_INIT_CRITERIA = sorted(n for n, cls in METHODS.items() if issubclass(cls, ScoreMethod))


@pytest.mark.parametrize("method", AT_INIT_CRITERIA)
def test_every_static_criterion_selects_whole_channels(method):
    from paiexport.data import DatasetName, load_data

    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [16, 12]}, data.input_shape, data.num_classes)
    cfg = SparsityConfig(target=0.5, distribution="uniform", structure="channel")
    m = make_method(METHODS[method].config_class())
    masks = m.select(SelectionContext(model, data, cfg, 32))
    assert len(rows_kept(masks["fc1.weight"])) == 8 and len(rows_kept(masks["fc2.weight"])) == 6
    assert masks["out.weight"].all()
    for mask in masks.values():
        rows = mask.reshape(mask.shape[0], -1)
        assert bool((rows.all(dim=1) | ~rows.any(dim=1)).all())


def test_channel_recipes_validate():
    recipe = load_recipe(bundled_recipes_dir() / "snip_channel90.yaml")
    assert recipe.sparsity.structure is StructureKind.channel and recipe.sparsity.target == 0.9
    recipe = load_recipe(bundled_recipes_dir() / "synflow_channel75.yaml")
    assert recipe.method.name == "synflow" and recipe.sparsity.target == 0.75


@pytest.mark.parametrize("distribution", ["uniform", "erk", "global"])
def test_channel_distributions_reach_the_target_to_whole_rows(distribution):
    torch.manual_seed(0)
    model = build_model(ModelName.cnn1d, {"channels": [16, 16, 16], "hidden": 32}, (1, 40), 10)
    weights = {n: m.weight for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Linear))}
    scores = {f"{n}.weight": w.detach().abs() for n, w in weights.items()}
    cfg = SparsityConfig(target=0.6, distribution=distribution, structure="channel")
    masks = select_structured(scores, model, cfg, torch.zeros(2, 1, 40))
    total = sum(m.numel() for m in masks.values())
    reached = 1 - sum(int(m.sum()) for m in masks.values()) / total
    largest_row = max(m[0].numel() for m in masks.values())
    assert abs(reached - 0.6) <= 2 * largest_row / total  # within two rows of the target
    assert masks["out.weight"].all()
    assert all(len(rows_kept(m)) >= 1 for m in masks.values())


def test_iterative_channel_rounds_only_shrink():
    from paiexport.data import DatasetName, load_data

    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [16, 16]}, data.input_shape, data.num_classes)
    sparsity = SparsityConfig(target=0.75, distribution="uniform", structure="channel", channel_reduce="l2")
    method = make_method(METHODS["magnitude"].config_class(name="magnitude", rounds=3))
    rounds = method.select_rounds(SelectionContext(model, data, sparsity, batch_size=32))
    assert len(rounds) == 3
    for earlier, later in itertools.pairwise(rounds):
        for name in later:
            assert not (later[name] & ~earlier[name]).any(), f"{name} regrew a pruned weight"
    for name, mask in rounds[-1].items():
        rows = mask.reshape(mask.shape[0], -1)
        assert torch.equal(rows.all(dim=1), rows.any(dim=1)), f"{name} is not whole channels"
    random = {n: torch.rand(m.shape) for n, m in rounds[0].items()}
    single = select_structured(random, model, sparsity, data.train.x)
    assert {n: len(rows_kept(m)) for n, m in rounds[-1].items()} == {
        n: len(rows_kept(m)) for n, m in single.items()
    }


def test_post_training_magnitude_pruning_follows_channel_structure():
    from paiexport.methods.post_training import magnitude_masks

    torch.manual_seed(0)
    model = build_model(ModelName.mlp, {"hidden": [12, 12]}, (1, 8), 3)
    sparsity = SparsityConfig(target=0.5, distribution="uniform", structure="channel")
    example = torch.zeros(2, 1, 8)
    masks = magnitude_masks(model, sparsity, 0.5, "test", example)
    single = select_structured({n: torch.rand(m.shape) for n, m in masks.items()}, model, sparsity, example)
    for name, mask in masks.items():
        rows = mask.reshape(mask.shape[0], -1)
        assert torch.equal(rows.all(dim=1), rows.any(dim=1)), f"{name} is not whole channels"
        assert len(rows_kept(mask)) == len(rows_kept(single[name]))
    assert not masks["fc1.weight"].all(), "channel pruning removed nothing"
