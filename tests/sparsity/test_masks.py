"""Masks live on the modules: pruned weights stay exactly zero through training, strip_masks bakes them in."""

import json

import pytest
import torch
from tiny import train_briefly
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.models import ModelName, build_model
from paiexport.sparsity.masks import (
    attach_masks,
    get_masks,
    layer_sparsity,
    masks_sparsity,
    overall_sparsity,
    prunable_weights,
    strip_masks,
)
from paiexport.training.callbacks import KeepPrunedZero
from paiexport.training.config import OptimizerConfig, TrainConfig


def random_masks(model: nn.Module, density: float = 0.3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {n: torch.rand(w.shape, generator=g) < density for n, w in prunable_weights(model).items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_pruned_weights_stay_exactly_zero_through_training(tmp_path, optimizer):
    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.cnn1d, {"channels": [4, 8], "hidden": 16}, data.input_shape, 4)
    masks = random_masks(model)
    attach_masks(model, masks)
    before = {n: w.detach().clone() for n, w in prunable_weights(model).items()}
    cfg = TrainConfig(
        epochs=2,
        optimizer=OptimizerConfig(name=optimizer, lr=0.01, weight_decay=0.01, nesterov=True),
    )
    train_briefly(model, data, cfg, tmp_path, [KeepPrunedZero()])
    for name, w in prunable_weights(model).items():
        assert torch.all(w[~masks[name]] == 0), name
        assert not torch.equal(w, before[name]), f"{name} did not train"
    assert all(torch.equal(get_masks(model)[n], masks[n]) for n in masks)
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "val_acc", "lr"} <= set(rows[0])
    assert (tmp_path / "ck" / "best.pt").exists() and (tmp_path / "ck" / "last.pt").exists()


def test_strip_masks_bakes_and_removes_buffers():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    masks = random_masks(model, 0.5)
    attach_masks(model, masks)
    assert any("weight_mask" in k for k in model.state_dict())
    strip_masks(model)
    assert not any("weight_mask" in k for k in model.state_dict())
    expected = 1 - sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert overall_sparsity(model) == pytest.approx(expected)
    assert layer_sparsity(model)["0.weight"] == pytest.approx(1 - masks["0.weight"].float().mean().item())
    # gradient hooks are gone: a pruned weight now receives gradient again
    model(torch.randn(3, 6)).sum().backward()
    assert model[0].weight.grad[~masks["0.weight"]].abs().sum() > 0


def test_exclude_globs_keep_layers_dense():
    model = build_model(ModelName.mlp, {"hidden": [8]}, (4,), 3)
    assert list(prunable_weights(model)) == ["fc1.weight", "out.weight"]
    assert list(prunable_weights(model, ["out.*"])) == ["fc1.weight"]


def test_masks_sparsity_is_removed_entries_over_all_entries():
    masks = {"a": torch.tensor([[True, False], [False, False]]), "b": torch.tensor([True, True, True, False])}
    assert masks_sparsity(masks) == pytest.approx(4 / 8)  # 3 of 4 and 1 of 4 removed
    assert masks_sparsity({}) == 0.0
