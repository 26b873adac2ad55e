"""Lottery tickets (IMP + rewinding), gradual magnitude pruning, magnitude after training."""

import json

import pytest
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.methods.gmp import GMPConfig, cubic_sparsity, resolve_end_epoch
from paiexport.methods.lth import level_densities, rewind, snapshot
from paiexport.paths import RunPaths
from paiexport.recipe import validate_recipe
from paiexport.runs.stages import prepare, recipe_trainer
from paiexport.sparsity.masks import get_masks, overall_sparsity, prunable_weights


def setup(tiny_recipe_dict, tmp_path, method: dict, **sparsity):
    tiny_recipe_dict["data"]["batch_size"] = 64  # step counts below are computed for batches of 64
    raw = {**tiny_recipe_dict, "method": method}
    raw["sparsity"] = {**raw["sparsity"], **sparsity}
    recipe = validate_recipe(raw, "test")
    data, _model, method_obj, ctx = prepare(recipe)
    paths = RunPaths(tmp_path)
    inner = recipe_trainer(recipe, data, paths)
    calls: list[dict] = []

    def trainer(model, callbacks, **kwargs):
        calls.append({"start": snapshot(model), "masks": get_masks(model), **kwargs})
        result = inner(model, callbacks, **kwargs)
        calls[-1]["end"] = snapshot(model)
        return result

    return method_obj, ctx, trainer, calls, paths


def metrics(paths: RunPaths) -> list[dict]:
    return [json.loads(line) for line in paths.metrics.read_text().splitlines()]


# ---------------------------------------------------------------- LTH


def test_level_densities():
    assert level_densities(0.1, 3, None) == pytest.approx([0.1 ** (1 / 3), 0.1 ** (2 / 3), 0.1])
    assert level_densities(0.5, 5, 0.2) == pytest.approx([0.8, 0.64, 0.512, 0.5])  # stops at the target
    with pytest.raises(UserError, match=r"method\.levels.*levels >= 11"):
        level_densities(0.1, 3, 0.2)


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
    method, ctx, trainer, calls, paths = setup(
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
    method, ctx, trainer, _, _ = setup(tiny_recipe_dict, tmp_path, {"name": "lth", "rewind_step": 10_000})
    with pytest.raises(UserError, match=r"method\.rewind_step"):
        method.fit(ctx, trainer)


# ---------------------------------------------------------------- GMP


def test_cubic_schedule_by_hand():
    assert cubic_sparsity(0, 0, 100, 0.0, 0.9) == 0.0
    assert cubic_sparsity(50, 0, 100, 0.0, 0.9) == pytest.approx(0.9 - 0.9 * 0.5**3)
    assert cubic_sparsity(25, 0, 100, 0.2, 0.8) == pytest.approx(0.8 - 0.6 * 0.75**3)
    assert cubic_sparsity(100, 0, 100, 0.0, 0.9) == 0.9
    assert cubic_sparsity(150, 0, 100, 0.0, 0.9) == 0.9
    assert cubic_sparsity(5, 10, 100, 0.3, 0.9) == 0.3


def test_gmp_end_epoch_is_checked():
    assert resolve_end_epoch(GMPConfig(), 8) == 6
    assert resolve_end_epoch(GMPConfig(start_epoch=1, end_epoch=2), 2) == 2
    with pytest.raises(UserError, match=r"method\.end_epoch"):
        resolve_end_epoch(GMPConfig(end_epoch=5), 4)


def test_gmp_follows_the_cubic_schedule_then_holds(tiny_recipe_dict, tmp_path):
    tiny_recipe_dict["train"]["epochs"] = 4  # 5 steps per epoch (307 training samples / 64)
    method, ctx, trainer, calls, paths = setup(
        tiny_recipe_dict,
        tmp_path,
        {"name": "gmp", "init_sparsity": 0.1, "start_epoch": 1, "end_epoch": 3, "update_every": 4},
        target=0.8,
        distribution="uniform",
    )
    details = method.fit(ctx, trainer).details
    assert calls[0]["checkpoint"].value == "last"  # earlier checkpoints are less sparse
    updates = details["mask_updates"]
    t0, t_end = 5, 15  # start of epoch 1, end of epoch 3; then Δt = 4 and the end step
    assert [u["step"] for u in updates] == [5, 9, 13, 15]
    for u in updates:
        assert u["sparsity"] == pytest.approx(0.8 + (0.1 - 0.8) * (1 - (u["step"] - t0) / (t_end - t0)) ** 3)
    assert overall_sparsity(ctx.model) == pytest.approx(0.8, abs=0.005)
    masks = get_masks(ctx.model)
    for name, w in prunable_weights(ctx.model).items():
        assert abs(1 - masks[name].float().mean().item() - 0.8) < 0.01  # uniform: every layer
        assert torch.all(w[~masks[name]] == 0)
    assert len(metrics(paths)) == 4


def test_gmp_init_sparsity_above_target_is_a_user_error(tiny_recipe_dict, tmp_path):
    method, ctx, trainer, _, _ = setup(tiny_recipe_dict, tmp_path, {"name": "gmp", "init_sparsity": 0.95})
    with pytest.raises(UserError, match=r"method\.init_sparsity"):
        method.fit(ctx, trainer)


# ---------------------------------------------------------------- magnitude after training


def test_magnitude_after_training_prunes_the_trained_weights(tiny_recipe_dict, tmp_path):
    method, ctx, trainer, calls, paths = setup(
        tiny_recipe_dict,
        tmp_path,
        {"name": "magnitude_after_training", "finetune_epochs": 1},
        target=0.7,
        distribution="global",
    )
    details = method.fit(ctx, trainer).details
    assert [c.get("tag") for c in calls] == ["dense", "finetune"]
    assert calls[0]["masks"] == {}
    trained = calls[0]["end"]
    masks = calls[1]["masks"]
    kept = torch.cat([trained[n][masks[n]].abs() for n in masks])
    dropped = torch.cat([trained[n][~masks[n]].abs() for n in masks])
    assert kept.min() >= dropped.max()  # the largest trained magnitudes survive, across layers
    assert sum(int(m.sum()) for m in masks.values()) == round(0.3 * sum(m.numel() for m in masks.values()))
    phases = details["phases"]
    assert [p["phase"] for p in phases] == ["dense", "finetune"]
    assert phases[0]["sparsity"] == 0.0 and phases[1]["sparsity"] == pytest.approx(0.7, abs=0.001)
    assert [r for r in metrics(paths) if "phase" in r] == phases


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
