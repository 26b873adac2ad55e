"""The training loop: LR schedules by hand, divergence as a user error, the epoch the model holds."""

import pytest
import torch
from tiny import train_briefly

from paiexport.data import DatasetName, load_data
from paiexport.errors import UserError
from paiexport.models import ModelName, build_model
from paiexport.training.config import LRScheduleConfig, OptimizerConfig, TrainConfig
from paiexport.training.loop import lr_factor


def test_schedules():
    cosine = LRScheduleConfig(name="cosine", warmup_epochs=1)
    assert lr_factor(cosine, 0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(cosine, 9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(cosine, 55, 10, 100) == pytest.approx(0.5)
    step = LRScheduleConfig(name="step", milestones=[2, 4], gamma=0.5)
    assert [lr_factor(step, s, 10, 100) for s in (0, 19, 20, 45)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_factor(LRScheduleConfig(name="constant"), 77, 10, 100) == 1.0


def test_divergence_is_a_clear_user_error(tmp_path):
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [8]}, data.input_shape, 4)
    cfg = TrainConfig(epochs=3, optimizer=OptimizerConfig(name="sgd", lr=1e30))
    with pytest.raises(UserError, match=r"train\.optimizer\.lr"):
        train_briefly(model, data, cfg, tmp_path)


@pytest.mark.parametrize("choice", ["best", "last"])
def test_result_names_the_epoch_the_model_holds(tmp_path, choice):
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [8]}, data.input_shape, 4)
    result = train_briefly(model, data, TrainConfig(epochs=3, checkpoint=choice), tmp_path)
    assert result.exported_epoch == (result.best_epoch if choice == "best" else 3)
    saved = torch.load(tmp_path / "ck" / f"{choice}.pt", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_best_follows_the_primary_metrics_direction(tmp_path):
    """A lower-is-better metric (perplexity) keeps the epoch with the lowest value as best."""
    from types import SimpleNamespace

    from paiexport.paths import PhaseCheckpoints
    from paiexport.tasks import task_by_name
    from paiexport.training.checkpoint import Progress
    from paiexport.training.loop import _keep_epoch
    from paiexport.training.metrics_log import EpochRecord
    from paiexport.training.result import TrainResult

    model = torch.nn.Linear(2, 2)
    logged = []
    checkpoints = PhaseCheckpoints(tmp_path)
    for task, best in (("language_model", 2), ("classification", 3)):
        state = SimpleNamespace(model=model, log=logged.append)
        data = SimpleNamespace(task=task_by_name(task))
        loop = SimpleNamespace(callbacks=[], state=state, checkpoints=checkpoints, data=data)
        progress = Progress(TrainResult(), 0.0)
        for epoch, value in enumerate((9.0, 4.0, 12.0), start=1):  # e.g. val perplexity per epoch
            record = EpochRecord(epoch, epoch, 1.0, value, 1.0, value, 0.1, 1.0, "ppl")
            with torch.no_grad():
                model.weight.fill_(epoch)
            _keep_epoch(loop, record, progress)
        assert progress.result.best_epoch == best
        saved = torch.load(checkpoints.best, weights_only=True)
        assert float(saved["weight"][0, 0]) == best  # best.pt holds that epoch's weights
