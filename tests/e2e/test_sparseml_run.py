"""SparseML recipes run through the real trainer (issue #13): LR, group sparsity, dense layers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.cli.overrides import parse_overrides
from paiexport.methods.gmp_groups import GMPGroup, GroupedPruning, _group_notes, group_targets
from paiexport.recipe import load_recipe
from paiexport.runs.stages import effective_sparsity, prepare
from paiexport.sparsity.masks import attach_masks, prunable_weights
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.loop import train

# 307 synthetic training samples, batch 77: S = 4 steps per epoch (update_frequency 0.5 = 2 steps).
SET_TEXTS = [
    "data.name=synthetic",
    "data.batch_size=77",
    "data.val_fraction=0.2",
    "model.name=mlp",
    "model.args={hidden: [32, 16]}",
]
SETS = parse_overrides(SET_TEXTS)
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
    train(
        model,
        data,
        recipe.train,
        batch_size=77,
        seed=0,
        metrics_path=metrics,
        checkpoint_dir=tmp_path / "ck",
        callbacks=callbacks,
    )
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
    src = Path(__file__).parents[1] / "fixtures" / "sparseml" / "resnet20.pruned_quant.md"
    native = tmp_path / "native.yaml"
    done = CliRunner().invoke(app, ["recipes", "convert", str(src), "-o", str(native)])
    assert done.exit_code == 0, done.output
    assert "# from modifiers[2] GMPruningModifier" in native.read_text()
    a, b = load_recipe(src, SETS), load_recipe(native, SETS)
    assert a.digest() == b.digest()
    assert a.export.int8.value == "static" and a.train.epochs == 8


def test_unsupported_modifier_exits_2_naming_it(tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "fixtures" / "sparseml" / "unsupported_mfac.yaml"
    done = CliRunner().invoke(app, ["run", str(src), "--out", str(tmp_path / "run")])
    assert done.exit_code == 2
    assert "MFACPruningModifier" in done.output and "unsupported_mfac.yaml" in done.output
    assert not (tmp_path / "run").exists()


def test_markdown_recipe_runs_end_to_end_with_targets_and_notes(tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "fixtures" / "sparseml" / "resnet20.pruned_quant.md"
    fast = ["data.batch_size=16", "bench.iterations=5", "bench.warmup=1", "bench.batch_sizes=[1]"]
    sets = [a for o in [*SET_TEXTS, *fast, "train.epochs=3"] for a in ("--set", o)]
    done = CliRunner().invoke(app, ["run", str(src), "--out", str(tmp_path / "run"), *sets])
    assert done.exit_code == 0, done.output[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["validation"] and all(c["passed"] for c in report["validation"].values())
    assert {"model.int8.onnx", "report.md", "report.html"} <= {p.name for p in (tmp_path / "run").iterdir()}
    s = report["sparsity"]  # __ALL_PRUNABLE__ at 0.8: every layer's target and the overall one
    assert math.isclose(s["target"], 0.8) and s["distribution"] == "groups"
    assert {n: layer["target"] for n, layer in s["per_layer"].items()} == dict.fromkeys(
        ["fc1.weight", "fc2.weight", "out.weight"], 0.8
    )
    # 3 of the recipe's 8 epochs: updates at epochs 0, 1, 2 -> last cubic target 0.8(1 - (1/2)^3) = 0.7.
    assert math.isclose(s["reached"], (round(1280 * 0.7) + round(512 * 0.7) + round(64 * 0.7)) / 1856)
    notes = " ".join(report["notes"])
    assert "not quantization-aware" in notes
    assert "method.groups[0]: end_epoch 4 is not reached in 3 epochs" in notes and "sets 0.7," in notes


def test_group_targets_weight_layers_by_size() -> None:
    groups = [
        GMPGroup(params=["fc1.weight"], final_sparsity=0.8, start_epoch=0, end_epoch=1, update_frequency=1),
        GMPGroup(kind="constant", params=["re:fc2"]),
    ]
    numels = {"fc1.weight": 1280, "fc2.weight": 512, "out.weight": 64}
    reached = {"fc1.weight": 0.8, "fc2.weight": 0.25, "out.weight": 0.0}
    overall, per_layer = group_targets(groups, numels, reached)
    assert per_layer == {"fc1.weight": 0.8, "fc2.weight": None, "out.weight": 0.0}
    assert math.isclose(overall, (1024 + 128) / 1856)  # constant counts its zeros, unlisted dense


def test_hostile_sparseml_yaml_is_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True)
    )
    path = tmp_path / "bomb.md"
    path.write_text(f"---\n{bomb}modifiers:\n  - !EpochRangeModifier {{end_epoch: 1.0}}\n---\n")
    done = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert done.exit_code == 2
    assert done.output.strip().endswith("recipe refused: more than 100000 values once aliases are expanded")


def test_group_notes_name_short_and_released_schedules() -> None:
    group = GMPGroup(
        params=["fc1.weight"],
        final_sparsity=0.8,
        start_epoch=0,
        end_epoch=2,
        update_frequency=1,
        leave_enabled=False,
    )
    # 2 steps per epoch, 2 epochs: updates at epochs 0 and 1 only (cubic: 0.8 * (1 - 0.5^3) = 0.7).
    pruning = GroupedPruning([group])
    plan = pruning._plan(group, 2, 4)
    assert list(plan) == [0, 2] and plan[0] == 0.0 and math.isclose(plan[2], 0.7)
    assert _group_notes(3, group, plan, 2.0) == [
        "method.groups[3]: leave_enabled false: its masks are released after end_epoch",
        "method.groups[3]: end_epoch 2 is not reached in 2 epochs of training: its last update sets 0.7, "
        "final_sparsity 0.8 is never applied (as in SparseML)",
    ]
    assert _group_notes(0, group.model_copy(update={"leave_enabled": True}), {**plan, 4: 0.8}, 3.0) == []
