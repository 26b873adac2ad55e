"""One hand-driven mask update and a short real training run for the dynamic methods' tests
(test_dynamic.py, test_rigl.py, test_set.py, test_snfs.py)."""

from __future__ import annotations

import torch
from tiny import train_briefly
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.methods import SelectionContext, make_method
from paiexport.methods.dynamic import DynamicConfig
from paiexport.methods.rigl import RigLConfig
from paiexport.methods.set import SETConfig
from paiexport.methods.snfs import SNFSConfig
from paiexport.models import ModelName, build_model
from paiexport.sparsity.masks import attach_masks, get_masks, prunable_weights
from paiexport.sparsity.types import SparsityConfig
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.config import OptimizerConfig, TrainConfig

W = torch.tensor([[0.9, 0.0, -0.05, 0.0], [0.0, 0.4, 0.0, -0.2], [0.1, 0.0, 0.0, 0.7]])
# Dense gradient: the largest entries at ACTIVE positions (9 at the dropped (0,2), 8 at the kept
# (1,1)) must not be "regrown"; among inactive positions the largest |g| are 6, -4 and 3.
G = torch.tensor([[5.0, 3.0, 9.0, -1.0], [-4.0, 8.0, 2.0, 7.0], [1.0, -6.0, 0.5, 2.0]])


def constant(name: str = "rigl", **extra) -> DynamicConfig:
    """An update after every step, dropping half of the active weights (constant schedule)."""
    cls = {"rigl": RigLConfig, "set": SETConfig, "snfs": SNFSConfig}[name]
    base = {"update_every": 1, "drop_fraction": 0.5, "drop_schedule": "constant", "end_fraction": 1.0}
    return cls(**{**base, **extra})


def linear(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def update_once(updater, model: nn.Module, grads: dict[str, torch.Tensor], optimizer: str = "sgd") -> tuple:
    """One training step of `model` (masks: its nonzero weights), as train() runs it, ending in a
    mask update. The dense gradient of each weight is `grads[name]` exactly; the learning rate is
    0, so the weights do not move, and every optimizer state entry is 1 before the update."""
    weights = prunable_weights(model)
    attach_masks(model, {n: w.detach() != 0 for n, w in weights.items()})
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam(model.parameters(), lr=0.0)
    )
    records: list[dict] = []
    state = TrainState(model, opt, nn.functional.cross_entropy, 10, 10, records.append)
    for cb in (KeepPrunedZero(), updater):
        cb.on_train_begin(state)
    updater.on_step_begin(state)
    opt.zero_grad()
    sum((weights[n] * g).sum() for n, g in grads.items()).backward()  # d/dW = grads[n] exactly
    updater.on_after_backward(state)
    opt.step()  # lr 0: the weights do not move, but optimizer state now exists
    for w in weights.values():
        for value in opt.state[w].values():
            if value.shape == w.shape:
                value.fill_(1.0)  # stale state everywhere, so a reset is visible
    state.step = 1
    updater.on_step_end(state)
    return opt, records


def one_update(updater, layer: nn.Linear, grad: torch.Tensor, optimizer: str = "sgd") -> tuple:
    """`update_once` on a one-layer model: (model, optimizer, logged records)."""
    model = nn.Sequential(layer)
    opt, records = update_once(updater, model, {"0.weight": grad}, optimizer)
    return model, opt, records


class Probe(TrainCallback):
    """Active weights per layer after every step (runs after the updater)."""

    def __init__(self) -> None:
        self.counts: list[dict[str, int]] = []
        self.masks: list[dict[str, torch.Tensor]] = []

    def on_step_end(self, state: TrainState) -> None:
        masks = get_masks(state.model)
        self.masks.append(masks)
        self.counts.append({n: int(m.sum()) for n, m in masks.items()})
        for name, w in prunable_weights(state.model).items():
            assert torch.all(w.detach()[~masks[name]] == 0), name


def train_dynamic(tmp_path, config: DynamicConfig, epochs: int = 3, optimizer: str = "sgd"):
    """Select, attach and train the tiny MLP at 80% ERK: (details, initial masks, probe, result)."""
    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [32, 16]}, data.input_shape, data.num_classes)
    method = make_method(config)
    ctx = SelectionContext(model, data, SparsityConfig(target=0.8, distribution="erk"), 32)
    masks = method.select(ctx)
    attach_masks(model, masks)
    probe = Probe()
    cfg = TrainConfig(epochs=epochs, optimizer=OptimizerConfig(name=optimizer, lr=0.05))
    callbacks = method.callbacks(ctx)
    result = train_briefly(model, data, cfg, tmp_path, [KeepPrunedZero(), *callbacks, probe])
    return method.details(callbacks), masks, probe, result
