"""Magnitude pruning after training: train dense, keep the largest trained |θ|, fine-tune from
there; by hand with a scripted trainer, then in real training."""

import pytest
import torch
from method_runs import ScriptedTrainer, metrics, recipe_fit
from selection_context import context, two_layer_net

from paiexport.methods.magnitude_after_training import MagnitudeAfterTraining, MagnitudeAfterTrainingConfig

X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.0, 1.0, 1.5]])
Y = torch.tensor([0, 1, 1])
# The dense training ends here. Global 50% keeps 0.9, 0.8, 0.7, 0.6, 0.5: four weights of the first
# layer and one of the second (uniform would keep three and two; the initial weights, others).
TRAINED = {
    "0.weight": torch.tensor([[0.9, -0.1, 0.5], [0.3, -0.7, 0.6]]),
    "2.weight": torch.tensor([[0.4, -0.8], [0.1, 0.2]]),
}
FINETUNED = {n: 2 * w for n, w in TRAINED.items()}


def test_magnitude_after_training_by_hand():
    ctx = context(two_layer_net(), X, Y, target=0.5, distribution="global")
    trainer = ScriptedTrainer(lambda call, step: TRAINED if call == 0 else FINETUNED)
    result = MagnitudeAfterTraining(MagnitudeAfterTrainingConfig(finetune_epochs=3)).fit(ctx, trainer)
    dense, finetune = trainer.calls
    assert (dense["tag"], dense["epochs"], dense["masks"]) == ("dense", None, {})
    assert (finetune["tag"], finetune["epochs"]) == ("finetune", 3)  # finetune_epochs, not train.epochs
    assert finetune["callbacks"] == ["KeepPrunedZero", "_KeepLog"]
    masks = finetune["masks"]
    assert masks["0.weight"].tolist() == [[True, False, True], [False, True, True]]
    assert masks["2.weight"].tolist() == [[False, True], [False, False]]
    for name, mask in masks.items():  # fine-tuning starts from the trained weights: no rewinding
        assert torch.equal(finetune["start"][name], TRAINED[name] * mask), name
    phases = result.details["phases"]
    assert [(p["phase"], p["sparsity"], p["epochs"]) for p in phases] == [
        ("dense", 0.0, 0),
        ("finetune", 0.5, 0),
    ]
    assert trainer.logged == phases  # metrics.jsonl: one line per phase


def test_magnitude_after_training_prunes_the_trained_weights(tiny_recipe_dict, tmp_path):
    method, ctx, trainer, calls, paths = recipe_fit(
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
