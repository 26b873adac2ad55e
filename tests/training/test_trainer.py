"""RecipeTrainer: the recipe's training loop bound to a run folder, as methods call it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from paiexport.data.splits import DataSplits, Split
from paiexport.paths import RunPaths
from paiexport.sparsity.masks import attach_masks
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.checkpoint import TrainSession
from paiexport.training.config import CheckpointChoice, TrainConfig
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.trainer import RecipeTrainer


def data() -> DataSplits:
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g))
    return DataSplits(split, split, split, input_shape=(6,), num_classes=3)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def trainer(root: Path, seed: int = 0, **train: object) -> RecipeTrainer:
    cfg = TrainConfig.model_validate({"epochs": 2, "optimizer": {"name": "sgd", "lr": 0.1}, **train})
    return RecipeTrainer(cfg, batch_size=8, seed=seed, data=data(), paths=RunPaths(root))


def test_a_call_trains_the_recipes_epochs_into_the_run_folder(tmp_path) -> None:
    result = trainer(tmp_path)(mlp(), [])
    assert [(r.epoch, r.step) for r in result.history] == [(1, 4), (2, 8)]  # 32 samples in batches of 8
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert result.compact is None


def test_epochs_tag_and_checkpoint_apply_to_one_call_only(tmp_path) -> None:
    run = trainer(tmp_path, epochs=1, optimizer={"name": "sgd", "lr": 1e-9})  # val accuracy stays: best is 1
    net = mlp()
    result = run(net, [], epochs=3, tag="level1", checkpoint=CheckpointChoice.last)
    assert (len(result.history), result.best_epoch, result.exported_epoch) == (3, 1, 3)
    last = torch.load(tmp_path / "checkpoints" / "level1" / "last.pt")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in last.items())
    assert run.train.epochs == 1 and run.train.checkpoint is CheckpointChoice.best  # the recipe's stays
    result = run(mlp(), [], epochs=3)
    assert (len(result.history), result.exported_epoch) == (3, 1)
    assert len(run(mlp(), []).history) == 1


def test_the_seed_fixes_the_batch_order(tmp_path) -> None:
    weights = []
    for folder, seed in (("a", 0), ("b", 0), ("c", 1)):
        net = mlp()
        trainer(tmp_path / folder, seed=seed, checkpoint="last")(net, [])
        weights.append(net[0].weight.detach())
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


class Recorder(TrainCallback):
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    def on_epoch_end(self, state: TrainState) -> None:
        self.seen.append(self.name)


def test_trackers_see_each_epoch_before_the_methods_callbacks(tmp_path) -> None:
    seen: list[str] = []
    run = trainer(tmp_path, epochs=1)
    run.trackers = Recorder("tracker", seen)
    run(mlp(), [Recorder("method", seen), Recorder("schedule", seen)])
    assert seen == ["tracker", "method", "schedule"]


def test_a_session_checkpoints_each_tagged_phase(tmp_path) -> None:
    paths = RunPaths(tmp_path)
    paths.checkpoints.mkdir()
    run = trainer(tmp_path, epochs=1)
    run.session = TrainSession(paths.resume_state, MetricsLog(paths.metrics))
    run(mlp(), [], tag="dense")
    run(mlp(), [], tag="finetune")
    saved = torch.load(paths.resume_state, weights_only=True)
    assert [p["key"] for p in saved["finished"]] == ["0:dense", "1:finetune"] and saved["current"] is None


def test_train_compact_trains_the_small_model(tmp_path) -> None:
    net = mlp()
    rows = torch.ones(8, dtype=torch.bool)
    rows[[1, 5]] = False
    attach_masks(
        net, {"0.weight": rows[:, None].expand(8, 6).clone(), "2.weight": torch.ones(3, 8, dtype=torch.bool)}
    )
    run = trainer(tmp_path, epochs=1, compact=True)
    result = run(net, [])
    small = run.compacted.model
    assert small[0].weight.shape == (6, 6) and small[2].weight.shape == (3, 6)
    assert result.compact == {"params_full": 83, "params_trained": 63, "selection_sparsity": 1 - 60 / 72}
    last = torch.load(tmp_path / "checkpoints" / "last.pt")
    assert last["0.weight"].shape == (6, 6)  # what was trained is the small model
