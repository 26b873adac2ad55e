"""Lottery tickets: each level prunes the trained weights by magnitude, rewinds the survivors to
the rewind point and retrains; checked by hand with a scripted trainer, then in real training."""

import json

import pytest
import torch
from method_runs import ScriptedTrainer, metrics, recipe_fit, state_of
from selection_context import context, two_layer_net
from torch import nn

from paiexport.errors import UserError
from paiexport.methods.lth import LotteryTicket, LTHConfig, RewindPoint, rewind, snapshot
from paiexport.paths import RunPaths
from paiexport.recipe import validate_recipe
from paiexport.runs.stages import prepare, recipe_trainer
from paiexport.sparsity.masks import attach_masks, get_masks, overall_sparsity, prunable_weights
from paiexport.training.callbacks import TrainState

X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.0, 1.0, 1.5]])
Y = torch.tensor([0, 1, 1])
INIT = {"0.weight": two_layer_net()[0].weight.detach(), "2.weight": two_layer_net()[2].weight.detach()}
# The dense training ends at TRAINED0 (|w| ranks the positions differently from INIT's), level 1 at
# TRAINED1: its large values sit at positions level 1 pruned, and (1,1) of 0.weight falls to 0.1.
TRAINED0 = {
    "0.weight": torch.tensor([[0.9, -0.1, 0.5], [0.3, -0.7, 0.2]]),
    "2.weight": torch.tensor([[0.4, -0.8], [0.1, 0.6]]),
}
TRAINED1 = {
    "0.weight": torch.tensor([[0.2, 5.0, -0.6], [0.8, 0.1, 9.0]]),
    "2.weight": torch.tensor([[-0.05, 0.3], [7.0, -0.2]]),
}
TRAINED2 = {n: -w for n, w in TRAINED1.items()}


def script(call: int, step: int) -> dict[str, torch.Tensor]:
    """The dense training moves linearly from INIT to TRAINED0 over its 4 steps."""
    if call == 0:
        return {n: INIT[n] + (TRAINED0[n] - INIT[n]) * (step / 4) for n in INIT}
    return TRAINED1 if call == 1 else TRAINED2


@pytest.mark.parametrize("rewind_step", [0, 2])
def test_lth_levels_by_hand(rewind_step):
    """Uniform 50% in 2 levels: density √0.5 keeps 4 of 6 and 3 of 4 (7 of 10 in all), then 3 and 2."""
    ctx = context(two_layer_net(), X, Y, target=0.5)
    trainer = ScriptedTrainer(script)
    details = LotteryTicket(LTHConfig(levels=2, rewind_step=rewind_step)).fit(ctx, trainer).details
    level1 = {
        "0.weight": [[True, False, True], [True, True, False]],
        "2.weight": [[True, True], [False, True]],
    }
    level2 = {
        "0.weight": [[True, False, True], [True, False, False]],
        "2.weight": [[False, True], [False, True]],
    }
    calls = trainer.calls
    assert [c["tag"] for c in calls] == ["level0", "level1", "level2"]
    assert [c["callbacks"] for c in calls] == [["RewindPoint"], ["KeepPrunedZero"], ["KeepPrunedZero"]]
    assert calls[0]["masks"] == {}
    assert {n: m.tolist() for n, m in calls[1]["masks"].items()} == level1
    assert {n: m.tolist() for n, m in calls[2]["masks"].items()} == level2
    point = script(0, rewind_step) if rewind_step else INIT  # the weights after `rewind_step` steps
    for call in calls[1:]:
        for name, mask in call["masks"].items():
            assert torch.equal(call["start"][name], point[name] * mask), (call["tag"], name)
    assert [lv["level"] for lv in details["levels"]] == [0, 1, 2]
    assert [lv["sparsity"] for lv in details["levels"]] == pytest.approx([0.0, 0.3, 0.5])
    assert [lv["epochs"] for lv in details["levels"]] == [0, 0, 0]  # the scripted trainings log no epoch
    assert trainer.logged == details["levels"]  # metrics.jsonl, through the dense training's log
    assert {n: m.tolist() for n, m in get_masks(ctx.model).items()} == level2


def test_lth_with_a_rate_stops_at_the_level_that_reaches_the_target():
    """rate 0.5 of 3 levels at 50%: the first level reaches the density 0.5, the others never run."""
    ctx = context(two_layer_net(), X, Y, target=0.5)
    trainer = ScriptedTrainer(script)
    details = LotteryTicket(LTHConfig(levels=3, rate=0.5)).fit(ctx, trainer).details
    assert [c["tag"] for c in trainer.calls] == ["level0", "level1"]
    masks = {n: m.tolist() for n, m in trainer.calls[1]["masks"].items()}
    assert masks == {
        "0.weight": [[True, False, True], [False, True, False]],
        "2.weight": [[False, True], [False, True]],
    }
    assert [lv["sparsity"] for lv in details["levels"]] == [0.0, 0.5]


def test_rewind_point_stores_the_state_after_its_step_and_refuses_one_past_the_end():
    model = nn.Sequential(nn.Linear(2, 2))
    attach_masks(model, {"0.weight": torch.tensor([[True, False], [True, True]])})
    state = TrainState(model, torch.optim.SGD(model.parameters(), lr=0.0), None, 4, 4, lambda r: None)
    points = [RewindPoint(step) for step in (0, 2, 4)]
    seen = [state_of(model)]
    for cb in points:
        cb.on_train_begin(state)
    for step in range(1, 5):
        with torch.no_grad():
            model[0].weight.add_(1.0)
            model[0].bias.add_(1.0)
        seen.append(state_of(model))
        state.step = step
        for cb in points:
            cb.on_step_end(state)
    for cb, step in zip(points, (0, 2, 4), strict=True):
        assert set(cb.stored) == {"0.weight", "0.bias"}  # the mask is not rewound
        assert all(torch.equal(cb.stored[k], seen[step][k]) for k in seen[step]), step
    with pytest.raises(
        UserError, match=r"^method\.rewind_step: 5 is past the end of the dense training \(4 steps\)$"
    ):
        RewindPoint(5).on_train_begin(state)


def test_snapshot_is_a_copy_without_the_masks():
    model = nn.Sequential(nn.Linear(2, 2))
    attach_masks(model, {"0.weight": torch.ones(2, 2, dtype=torch.bool)})
    stored = snapshot(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert set(stored) == {"0.weight", "0.bias"}
    assert not torch.equal(stored["0.weight"], model[0].weight.detach())


def test_rewind_restores_exactly_the_stored_tensors():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    stored = snapshot(net)
    with torch.no_grad():  # "training": every parameter and buffer moves
        for v in net.state_dict().values():
            v.add_(torch.ones_like(v))
    masks = {n: torch.rand(w.shape) < 0.5 for n, w in prunable_weights(net).items()}
    rewind(net, stored, masks)
    state = net.state_dict()
    for key, value in stored.items():
        if key.endswith(".weight") and key in masks:
            assert torch.equal(state[key][masks[key]], value[masks[key]])  # survivors: bit-exact
            assert torch.all(state[key][~masks[key]] == 0)
        else:
            assert torch.equal(state[key], value), key  # biases, BN statistics too


def weights_after_steps(tiny_recipe_dict, tmp_path, epochs: int) -> dict:
    """Replay the dense training independently: same seed, constant LR, `epochs` epochs."""
    tiny_recipe_dict["data"]["batch_size"] = 64  # step counts below are computed for batches of 64
    raw = {**tiny_recipe_dict, "method": {"name": "dense"}}
    raw["train"] = {**raw["train"], "epochs": epochs, "checkpoint": "last"}
    recipe = validate_recipe(raw, "test")
    data, model, _, _ = prepare(recipe)
    recipe_trainer(recipe, data, RunPaths(tmp_path / "replay"))(model, [])
    return snapshot(model)


@pytest.mark.parametrize("rewind_step", [0, 5])
def test_lth_levels_rewind_and_reach_the_target(tiny_recipe_dict, tmp_path, rewind_step):
    tiny_recipe_dict["train"]["lr_schedule"] = {"name": "constant"}  # so the replay below is exact
    method, ctx, trainer, calls, paths = recipe_fit(
        tiny_recipe_dict, tmp_path, {"name": "lth", "levels": 3, "rewind_step": rewind_step}, target=0.9
    )
    init = snapshot(ctx.model)
    details = method.fit(ctx, trainer).details
    assert [c["tag"] for c in calls] == ["level0", "level1", "level2", "level3"]
    # 5 steps = one epoch of the tiny recipe: the rewind point is the replayed epoch-1 state.
    rewound_to = init if rewind_step == 0 else weights_after_steps(tiny_recipe_dict, tmp_path, 1)
    for level, call in enumerate(calls[1:], start=1):
        masks = call["masks"]
        for key, value in rewound_to.items():
            start = call["start"][key]
            if key in masks:
                assert torch.all(start[~masks[key]] == 0)
                assert torch.equal(start[masks[key]], value[masks[key]]), (level, key)
            else:
                assert torch.equal(start, value), (level, key)  # biases, BN statistics
        if level > 1:  # survivors at level k are a subset of level k-1's
            assert all(not torch.any(mask & ~calls[level - 1]["masks"][n]) for n, mask in masks.items())
    if rewind_step:
        assert not torch.equal(rewound_to["fc1.weight"], init["fc1.weight"])
    expected = [0.0, 1 - 0.1 ** (1 / 3), 1 - 0.1 ** (2 / 3), 0.9]
    assert [lv["level"] for lv in details["levels"]] == [0, 1, 2, 3]
    assert [lv["sparsity"] for lv in details["levels"]] == pytest.approx(expected, abs=0.002)
    assert overall_sparsity(ctx.model) == pytest.approx(0.9, abs=0.001)
    logged = [r for r in metrics(paths) if "level" in r]
    assert logged == details["levels"]
    assert all({"val_acc", "test_acc", "sparsity"} <= set(r) for r in logged)


def test_lth_rewind_step_past_training_is_a_user_error(tiny_recipe_dict, tmp_path):
    method, ctx, trainer, _, _ = recipe_fit(
        tiny_recipe_dict, tmp_path, {"name": "lth", "rewind_step": 10_000}
    )
    with pytest.raises(UserError, match=r"method\.rewind_step"):
        method.fit(ctx, trainer)


def test_lth_run_reports_levels_in_report_json_and_metrics(tmp_path, write_recipe, tiny_recipe_dict):
    from typer.testing import CliRunner

    from paiexport.cli import app

    tiny_recipe_dict["method"] = {"name": "lth", "levels": 2}
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(write_recipe(tiny_recipe_dict)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    levels = report["levels"]
    assert [lv["level"] for lv in levels] == [0, 1, 2]
    assert levels[-1]["sparsity"] == pytest.approx(0.8, abs=0.001) == report["sparsity"]["reached"]
    assert levels[-1]["test_acc"] == pytest.approx(report["accuracy"]["torch"])
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in lines if "level" in r] == levels
    assert sum("epoch" in r for r in lines) == 3 * 2  # three trainings of two epochs
    masks = torch.load(out / "masks.pt")
    assert report["layer_collapse"]["layers"] == []
    for layer, mask in masks.items():  # an output channel is reported iff its mask row is empty
        empty = [i for i in range(mask.shape[0]) if not mask[i].any()]
        assert report["layer_collapse"]["output_channels"].get(layer, []) == empty
    assert (out / "checkpoints" / "level2" / "best.pt").exists()
