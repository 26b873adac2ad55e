"""SparseML recipes run through the real trainer (issue #13): LR, group sparsity, dense layers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.pipeline import effective_sparsity, prepare
from paiexport.recipe import load_recipe
from paiexport.sparsity.masks import attach_masks, prunable_weights
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.loop import train

# 307 synthetic training samples, batch 77: S = 4 steps per epoch (update_frequency 0.5 = 2 steps).
SETS = ["data.name=synthetic", "data.batch_size=77", "data.val_fraction=0.2",
        "model.name=mlp", "model.args={hidden: [32, 16]}"]  # fmt: skip
SPARSEML = r"""
lr: &lr 0.1
prune_end: 3.0
modifiers:
  - !EpochRangeModifier {start_epoch: 0.0, end_epoch: 4.0}
  - !SetLearningRateModifier {start_epoch: 0.0, learning_rate: *lr}
  - !LearningRateModifier
    lr_class: MultiStepLR
    lr_kwargs: {milestones: [2], gamma: 0.5}
    init_lr: *lr
    start_epoch: 0.0
  - !GMPruningModifier
    params: ['re:fc1\..*']
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: eval(prune_end)
    update_frequency: 0.5
  - !GlobalMagnitudePruningModifier
    params: [fc2.weight]
    init_sparsity: 0.0
    final_sparsity: 0.5
    start_epoch: 1.0
    end_epoch: 2.0
    update_frequency: 0.5
    inter_func: linear
"""


class LRLog(TrainCallback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_after_backward(self, state: TrainState) -> None:  # the LR of this optimizer step
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


def _run(path: Path, tmp_path: Path) -> tuple[torch.nn.Module, LRLog, list[dict]]:
    recipe = load_recipe(path, SETS)
    data, model, method, ctx = prepare(recipe)
    lr_log = LRLog()
    attach_masks(model, method.select(ctx))
    callbacks = [KeepPrunedZero(), *method.callbacks(ctx), lr_log]
    metrics = tmp_path / "metrics.jsonl"
    train(model, data, recipe.train, batch_size=77, seed=0, metrics_path=metrics,
          checkpoint_dir=tmp_path / "ck", callbacks=callbacks)  # fmt: skip
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert effective_sparsity(recipe).target == 0.0  # groups carry their own targets
    return model, lr_log, [r for r in records if r.get("event") == "mask_update"]


def test_sparseml_recipe_trains_to_its_schedule(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(SPARSEML)
    model, lr_log, updates = _run(path, tmp_path)
    # LR by hand: 0.1 for epochs 0-1 (steps 0..7), x0.5 at milestone 2 (step 8 on), 4 epochs x 4 steps.
    assert lr_log.lrs == [0.1] * 8 + [0.05] * 8
    fc1 = [u for u in updates if u["group"] == 0]
    assert [u["epoch"] for u in fc1] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    for u in fc1:  # cubic: s = s_f + (s_i - s_f)(1 - e/3)^3, exactly round(numel*s) zeros
        s = 0.8 + (0.05 - 0.8) * (1 - u["epoch"] / 3.0) ** 3
        assert math.isclose(u["target"], s, rel_tol=1e-12)
        assert u["zeros"]["fc1.weight"] == round(1280 * s)
    fc2 = [u for u in updates if u["group"] == 1]
    assert [(u["epoch"], u["target"]) for u in fc2] == [(1.0, 0.0), (1.5, 0.25), (2.0, 0.5)]
    weights = prunable_weights(model)
    assert int((weights["fc1.weight"] == 0).sum()) == round(1280 * 0.8)  # to the weight
    assert int((weights["fc2.weight"] == 0).sum()) == 256
    assert int((weights["out.weight"] == 0).sum()) == 0  # in no group: dense


def test_convert_writes_an_equivalent_native_recipe(tmp_path: Path) -> None:
    src = Path(__file__).parent / "data" / "sparseml" / "resnet20.pruned_quant.md"
    native = tmp_path / "native.yaml"
    done = CliRunner().invoke(app, ["recipes", "convert", str(src), "-o", str(native)])
    assert done.exit_code == 0, done.output
    assert "# from modifiers[2] GMPruningModifier" in native.read_text()
    a, b = load_recipe(src, SETS), load_recipe(native, SETS)
    assert a.digest() == b.digest()
    assert a.export.int8.value == "static" and a.train.epochs == 8


def test_unsupported_modifier_exits_2_naming_it(tmp_path: Path) -> None:
    src = Path(__file__).parent / "data" / "sparseml" / "unsupported_mfac.yaml"
    done = CliRunner().invoke(app, ["run", str(src), "--out", str(tmp_path / "run")])
    assert done.exit_code == 2
    assert "MFACPruningModifier" in done.output and "unsupported_mfac.yaml" in done.output
    assert not (tmp_path / "run").exists()
