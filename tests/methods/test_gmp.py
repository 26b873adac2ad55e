"""Gradual magnitude pruning: the masks follow the cubic schedule from the current |θ| at the
update steps, then hold; by hand with a scripted trainer, then in real training."""

import pytest
import torch
from method_runs import ScriptedTrainer, metrics, recipe_fit
from selection_context import context
from torch import nn

from paiexport.errors import UserError
from paiexport.methods.gmp import GMPConfig, GradualMagnitudePruning, GradualPruning, resolve_end_epoch
from paiexport.methods.gmp_groups import GMPGroup, GroupedPruning
from paiexport.sparsity.masks import get_masks, overall_sparsity, prunable_weights
from paiexport.training.config import CheckpointChoice

# 20 weights of |w| 0.1 ... 2.0 (signs alternate); from step 6 on the magnitudes are reversed
# (|w| = 2.1 - |W0|), from step 12 they are W0's again.
W0 = (torch.arange(1, 21, dtype=torch.float32) / 10 * torch.tensor([1.0, -1.0] * 10)).view(4, 5)
W1 = (2.1 - W0.abs()) * W0.sign()


def script(call: int, step: int) -> dict[str, torch.Tensor] | None:
    if step == 6:
        return {"0.weight": W1}
    return {"0.weight": W0} if step == 12 else None


def gmp_fit(cfg: GMPConfig, steps: int) -> tuple[ScriptedTrainer, object]:
    net = nn.Sequential(nn.Linear(5, 4, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(W0)
    ctx = context(net, torch.zeros(2, 5), torch.zeros(2).long(), target=0.8)
    trainer = ScriptedTrainer(script, steps=steps, steps_per_epoch=5)
    return trainer, GradualMagnitudePruning(cfg).fit(ctx, trainer)


def kept_magnitudes(mask: torch.Tensor) -> list[float]:
    """W0's |w| (tenths) at the kept positions."""
    return sorted(round(float(v) * 10) for v in W0.abs()[mask])


def test_gmp_masks_by_hand():
    """Epoch 1 to the end of epoch 2 of three (5 steps each): t0 = 5, t_end = 10, Δt = 2.

    s_t = 0.8 + (0.2 − 0.8)(1 − (t − 5)/5)³: 0.2, 0.6704, 0.7952, 0.8 at steps 5, 7, 9, 10, which
    keep round(16), round(6.592) and round(4.096) of 20: 16, 7, 4, 4.
    """
    cfg = GMPConfig(init_sparsity=0.2, start_epoch=1, end_epoch=2, update_every=2, notes=["converted"])
    trainer, result = gmp_fit(cfg, steps=15)
    updates = result.details["mask_updates"]
    assert [u["step"] for u in updates] == [5, 7, 9, 10]
    assert [u["sparsity"] for u in updates] == pytest.approx([0.2, 0.6704, 0.7952, 0.8])
    # reached: whole weights of 20 are removed, 16, 7, 4 and 4 kept (the target rounded)
    assert [u["reached"] for u in updates] == pytest.approx([0.2, 0.65, 0.8, 0.8])
    after = [m["0.weight"] for m in trainer.calls[0]["masks_after"]]  # after steps 1..15
    assert all(bool(m.all()) for m in after[:4])  # dense until t0
    assert kept_magnitudes(after[4]) == list(range(5, 21))  # step 5: the 4 smallest of W0 go
    # step 7: the weights are W1 now; its 7 largest survivors are where W0 held 0.5 ... 1.1
    assert kept_magnitudes(after[6]) == list(range(5, 12))
    assert kept_magnitudes(after[8]) == [5, 6, 7, 8]
    for m in after[9:]:  # held after t_end, though from step 12 on W0's order would pick others
        assert torch.equal(m, after[8])
    assert trainer.calls[0]["callbacks"] == ["KeepPrunedZero", "GradualPruning"]
    assert trainer.calls[0]["checkpoint"] is CheckpointChoice.last
    assert result.notes == ["converted"]


def test_gmp_from_the_start_prunes_before_the_first_step_and_ends_at_three_quarters():
    """start_epoch 0: the init_sparsity mask comes at train begin (step 0); 4 epochs end at 3."""
    trainer, result = gmp_fit(GMPConfig(init_sparsity=0.5, update_every=100), steps=20)
    assert result.details["mask_updates"] == [
        {"step": 0, "sparsity": 0.5, "reached": 0.5},
        {"step": 15, "sparsity": 0.8, "reached": pytest.approx(0.8)},
    ]
    after = [m["0.weight"] for m in trainer.calls[0]["masks_after"]]
    assert kept_magnitudes(after[0]) == list(range(11, 21))  # already after step 1
    assert kept_magnitudes(after[13]) == list(range(11, 21))
    assert kept_magnitudes(after[14]) == [17, 18, 19, 20]  # step 15; W0 is back from step 12


def test_gmp_chooses_its_schedule_and_checks_init_sparsity():
    ctx = context(nn.Sequential(nn.Linear(5, 4)), torch.zeros(2, 5), torch.zeros(2).long(), target=0.8)
    assert [type(c) for c in GradualMagnitudePruning(GMPConfig()).callbacks(ctx)] == [GradualPruning]
    group = GMPGroup(params=["0.weight"], final_sparsity=0.5, start_epoch=0, end_epoch=1, update_frequency=1)
    grouped = GradualMagnitudePruning(GMPConfig(groups=[group], init_sparsity=0.9))  # groups replace it
    assert [type(c) for c in grouped.callbacks(ctx)] == [GroupedPruning]
    with pytest.raises(UserError, match=r"^method\.init_sparsity: 0\.9 is above sparsity\.target 0\.8$"):
        GradualMagnitudePruning(GMPConfig(init_sparsity=0.9)).callbacks(ctx)
    masks = GradualMagnitudePruning(GMPConfig()).select(ctx)
    assert list(masks) == ["0.weight"] and bool(masks["0.weight"].all())  # training starts dense


def test_gmp_end_epoch_is_checked():
    assert resolve_end_epoch(GMPConfig(), 8) == 6
    assert resolve_end_epoch(GMPConfig(start_epoch=1, end_epoch=2), 2) == 2
    with pytest.raises(UserError, match=r"method\.end_epoch"):
        resolve_end_epoch(GMPConfig(end_epoch=5), 4)


def test_gmp_follows_the_cubic_schedule_then_holds(tiny_recipe_dict, tmp_path):
    tiny_recipe_dict["train"]["epochs"] = 4  # 5 steps per epoch (307 training samples / 64)
    method, ctx, trainer, calls, paths = recipe_fit(
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
    method, ctx, trainer, _, _ = recipe_fit(
        tiny_recipe_dict, tmp_path, {"name": "gmp", "init_sparsity": 0.95}
    )
    with pytest.raises(UserError, match=r"method\.init_sparsity"):
        method.fit(ctx, trainer)
