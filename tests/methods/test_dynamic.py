"""Dynamic sparse training (SET, RigL, SNFS): hand-checked updates and invariants in real training."""

import math

import pytest
import torch
from tiny import train_briefly
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.errors import UserError
from paiexport.methods import make_method
from paiexport.methods.dynamic import DropSchedule, DynamicConfig, drop_fraction_at
from paiexport.methods.rigl import RigLConfig, RigLUpdater
from paiexport.methods.set import SETConfig, SETUpdater
from paiexport.methods.snfs import SNFSConfig
from paiexport.models import ModelName, build_model
from paiexport.recipe import validate_recipe
from paiexport.sparsity.masks import (
    attach_masks,
    get_masks,
    pop_dense_grads,
    prunable_weights,
    request_dense_grads,
)
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.config import OptimizerConfig, TrainConfig

W = torch.tensor([[0.9, 0.0, -0.05, 0.0], [0.0, 0.4, 0.0, -0.2], [0.1, 0.0, 0.0, 0.7]])
# Dense gradient: the largest entries at ACTIVE positions (9 at the dropped (0,2), 8 at the kept
# (1,1)) must not be "regrown"; among inactive positions the largest |g| are 6, -4 and 3.
G = torch.tensor([[5.0, 3.0, 9.0, -1.0], [-4.0, 8.0, 2.0, 7.0], [1.0, -6.0, 0.5, 2.0]])


def constant(name: str = "rigl", **extra) -> DynamicConfig:
    cls = {"rigl": RigLConfig, "set": SETConfig, "snfs": SNFSConfig}[name]
    base = {"update_every": 1, "drop_fraction": 0.5, "drop_schedule": "constant", "end_fraction": 1.0}
    return cls(**{**base, **extra})


def one_update(updater, layer: nn.Linear, grad: torch.Tensor, optimizer: str = "sgd") -> tuple:
    """One training step of a one-layer model, as train() runs it, ending in a mask update."""
    model = nn.Sequential(layer)
    attach_masks(model, {"0.weight": layer.weight.detach() != 0})
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
    (layer.weight * grad).sum().backward()  # d/dW = grad exactly
    updater.on_after_backward(state)
    opt.step()  # lr 0: the weights do not move, but optimizer state now exists
    for value in opt.state[layer.weight].values():
        if value.shape == layer.weight.shape:
            value.fill_(1.0)  # stale state everywhere, so a reset is visible
    state.step = 1
    updater.on_step_end(state)
    return model, opt, records


def linear(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_rigl_update_by_hand(optimizer):
    layer = linear(W)
    before = {"0.weight": W != 0}
    model, opt, records = one_update(RigLUpdater(constant(), torch.Generator()), layer, G, optimizer)
    mask = get_masks(model)["0.weight"]
    # 6 active, drop 3 smallest |w|: (0,2) 0.05, (2,0) 0.1, (1,3) 0.2; grow 3 largest inactive |g|.
    expected = torch.zeros(3, 4, dtype=torch.bool)
    for i, j in [(0, 0), (1, 1), (2, 3), (2, 1), (1, 0), (0, 1)]:
        expected[i, j] = True
    assert mask.tolist() == expected.tolist()
    dropped = before["0.weight"] & ~mask
    grown = mask & ~before["0.weight"]
    assert {tuple(p) for p in dropped.nonzero().tolist()} == {(0, 2), (2, 0), (1, 3)}
    assert {tuple(p) for p in grown.nonzero().tolist()} == {(2, 1), (1, 0), (0, 1)}
    w = layer.weight.detach()
    assert torch.all(w[grown] == 0) and torch.all(w[dropped] == 0)
    assert torch.equal(w[mask & before["0.weight"]], W[mask & before["0.weight"]])
    state = [v for v in opt.state[layer.weight].values() if v.shape == W.shape]
    assert len(state) == (1 if optimizer == "sgd" else 2)  # momentum_buffer | exp_avg, exp_avg_sq
    for value in state:
        assert torch.all(value[grown] == 0) and torch.all(value[dropped] == 0)
        assert torch.all(value[~(grown | dropped)] == 1)
    assert records == [
        {
            "event": "mask_update",
            "update": 1,
            "step": 1,
            "epoch": 1,
            "drop_fraction": 0.5,
            "dropped": {"0.weight": 3},
            "regrown": {"0.weight": 3},
        }
    ]


def test_rigl_the_optimizer_never_sees_the_dense_gradient():
    layer = linear(W)
    model = nn.Sequential(layer)
    attach_masks(model, {"0.weight": W != 0})
    request_dense_grads(model)
    (layer.weight * G).sum().backward()
    assert torch.equal(layer.weight.grad, G * (W != 0))
    assert torch.equal(pop_dense_grads(model)["0.weight"], G)
    layer.weight.grad = None
    (layer.weight * G).sum().backward()  # the request lasted one backward only
    assert pop_dense_grads(model) == {}


def test_rigl_requests_dense_gradients_only_on_update_steps():
    updater = RigLUpdater(constant(update_every=3), torch.Generator())
    model = nn.Sequential(linear(W))
    attach_masks(model, {"0.weight": W != 0})
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.0), None, 9, 9, lambda r: None)
    dense_steps = []
    for step in range(9):
        state.step = step
        updater.on_step_begin(state)
        (model[0].weight * G).sum().backward()
        if pop_dense_grads(model):
            dense_steps.append(step + 1)
    assert dense_steps == [3, 6]  # 9 would be at 100% of training: no update there


def test_set_grows_only_among_previously_inactive_positions():
    torch.manual_seed(0)
    for seed in range(5):
        layer = nn.Linear(20, 10, bias=False)
        with torch.no_grad():
            layer.weight.mul_(torch.rand(10, 20, generator=torch.Generator().manual_seed(seed)) < 0.3)
        before, w0 = layer.weight.detach() != 0, layer.weight.detach().clone()
        updater = SETUpdater(constant("set", drop_fraction=0.4), torch.Generator().manual_seed(seed))
        model, _, records = one_update(updater, layer, torch.randn(10, 20))
        after = get_masks(model)["0.weight"]
        grown, dropped = after & ~before, before & ~after
        assert int(grown.sum()) == int(dropped.sum()) == round(0.4 * int(before.sum()))
        # Weights active before and after keep their values: one dropped and regrown in the same
        # update would have been reset to zero.
        assert torch.equal(layer.weight.detach()[before & after], w0[before & after])
        assert torch.all(layer.weight.detach()[grown] == 0)
        assert w0[dropped].abs().max() <= w0[before & after].abs().min()  # drop by magnitude
        assert records[0]["regrown"]["0.weight"] == int(grown.sum())


def test_drop_schedules():
    cfg = DynamicConfig(name="x", update_every=10, drop_fraction=0.4, end_fraction=0.5)
    assert drop_fraction_at(cfg, 0, 100) is None
    assert drop_fraction_at(cfg, 5, 100) is None  # not a multiple of update_every
    assert drop_fraction_at(cfg, 10, 100) == pytest.approx(0.2 * (1 + math.cos(math.pi * 10 / 50)))
    assert drop_fraction_at(cfg, 40, 100) == pytest.approx(0.2 * (1 + math.cos(math.pi * 40 / 50)))
    assert drop_fraction_at(cfg, 50, 100) is None and drop_fraction_at(cfg, 60, 100) is None
    linear_cfg = cfg.model_copy(update={"drop_schedule": DropSchedule.linear})
    assert drop_fraction_at(linear_cfg, 30, 100) == pytest.approx(0.4 * (1 - 30 / 50))
    assert drop_fraction_at(cfg.model_copy(update={"drop_schedule": DropSchedule.constant}), 40, 100) == 0.4


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
    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [32, 16]}, data.input_shape, data.num_classes)
    from paiexport.methods import SelectionContext
    from paiexport.sparsity.types import SparsityConfig

    method = make_method(config)
    ctx = SelectionContext(model, data, SparsityConfig(target=0.8, distribution="erk"), 32)
    masks = method.select(ctx)
    attach_masks(model, masks)
    probe = Probe()
    cfg = TrainConfig(epochs=epochs, optimizer=OptimizerConfig(name=optimizer, lr=0.05))
    callbacks = method.callbacks(ctx)
    result = train_briefly(model, data, cfg, tmp_path, [KeepPrunedZero(), *callbacks, probe])
    return method.details(callbacks), masks, probe, result


@pytest.mark.parametrize("name", ["rigl", "set"])
def test_per_layer_sparsity_unchanged_after_many_updates(tmp_path, name):
    config = constant(name, update_every=2, drop_fraction=0.3)
    details, initial, probe, _ = train_dynamic(tmp_path, config)
    counts = {n: int(m.sum()) for n, m in initial.items()}
    assert all(c == counts for c in probe.counts)
    summary = details["mask_updates"]
    assert summary["count"] == (len(probe.counts) - 1) // 2 >= 10  # steps 2, 4, ... before the end
    assert summary["regrown"] == summary["dropped"] > 0
    final = probe.masks[-1]
    assert any(not torch.equal(final[n], initial[n]) for n in initial)  # the masks did move


def test_snfs_keeps_total_sparsity_and_redistributes(tmp_path):
    details, initial, probe, _ = train_dynamic(tmp_path, constant("snfs", update_every=2, drop_fraction=0.3))
    total = sum(int(m.sum()) for m in initial.values())
    assert all(sum(c.values()) == total for c in probe.counts)
    assert any(c != {n: int(m.sum()) for n, m in initial.items()} for c in probe.counts)
    updates = details["mask_updates"]["updates"]
    assert all(u["dropped"] == u["regrown"] for u in updates)


def test_no_update_after_end_fraction(tmp_path):
    config = RigLConfig(update_every=3, drop_fraction=0.3, end_fraction=0.5)
    details, _, probe, _ = train_dynamic(tmp_path, config, epochs=4)
    total = len(probe.masks)
    steps = [u["step"] for u in details["mask_updates"]["updates"]]
    assert steps == list(range(3, math.ceil(total / 2), 3))
    last = steps[-1]
    assert all(torch.equal(m[n], probe.masks[last - 1][n]) for m in probe.masks[last:] for n in m)
    logged = [line for line in (tmp_path / "m.jsonl").read_text().splitlines() if "mask_update" in line]
    assert len(logged) == len(steps)


def test_initial_mask_from_any_static_criterion(tmp_path):
    from paiexport.methods import SelectionContext
    from paiexport.methods.snip import SnipConfig
    from paiexport.sparsity.types import SparsityConfig

    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)

    def ctx():
        torch.manual_seed(0)
        model = build_model(ModelName.mlp, {"hidden": [16]}, data.input_shape, data.num_classes)
        return SelectionContext(model, data, SparsityConfig(target=0.7, distribution="uniform"), 32)

    rigl = make_method(RigLConfig(init="snip")).select(ctx())
    snip = make_method(SnipConfig()).select(ctx())
    assert all(torch.equal(rigl[n], snip[n]) for n in snip)


def test_bad_init_names_the_field(tiny_recipe_dict):
    tiny_recipe_dict["method"] = {"name": "rigl", "init": "rigl"}
    with pytest.raises(UserError, match=r"recipe.yaml: method.init: unknown static criterion 'rigl'"):
        validate_recipe(tiny_recipe_dict, "recipe.yaml")
    tiny_recipe_dict["method"] = {"name": "set", "drop_fraction": 1.5}
    with pytest.raises(UserError, match=r"method.drop_fraction"):
        validate_recipe(tiny_recipe_dict, "recipe.yaml")


def test_bundled_rigl90_runs_and_reports_mask_updates(tmp_path):
    """The README's main recipe, shortened: updates happen, per-layer ERK sparsity is exact."""
    import json

    from paiexport.cli.overrides import parse_overrides
    from paiexport.recipe import bundled_recipes_dir, load_recipe
    from paiexport.runs.pipeline import run_recipe

    recipe = load_recipe(
        bundled_recipes_dir() / "rigl90.yaml",
        parse_overrides(["train.epochs=2", "method.update_every=10", "bench.iterations=5"]),
    )
    report = run_recipe(recipe, tmp_path / "run")
    updates = report.method_details["mask_updates"]
    assert updates["count"] >= 3 and updates["dropped"] == updates["regrown"] > 0
    assert updates["schedule"]["update_every"] == 10
    assert json.loads((tmp_path / "run" / "report.json").read_text())["mask_updates"] == updates
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r.get("event") == "mask_update"] == [
        u["step"] for u in updates["updates"]
    ]
    masks = torch.load(tmp_path / "run" / "masks.pt")
    for name, layer in report.sparsity.per_layer.items():
        assert 1 - int(masks[name].sum()) / masks[name].numel() == pytest.approx(layer.target), name
        assert layer.reached == pytest.approx(layer.target, abs=1e-3), name
    assert report.weights_trained is True
    assert "mask updates" in (tmp_path / "run" / "report.md").read_text()
