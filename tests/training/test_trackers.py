"""train.log_to: tensorboard and mlflow get every epoch, mask update and the final figures."""

from __future__ import annotations

import sys

import pytest
import yaml
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.training.trackers import flatten


def run(tmp_path, tiny_recipe_dict, log_to: list[str]):
    tiny_recipe_dict["method"] = {"name": "set", "update_every": 2}
    tiny_recipe_dict["train"]["log_to"] = log_to
    tiny_recipe_dict["bench"]["iterations"] = 3
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict))
    return CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])


def test_flatten_keeps_numbers_only():
    record = {"epoch": 2, "ok": True, "name": "x", "dropped": {"fc.weight": 3, "out.weight": 1.5}}
    assert flatten(record, "e/") == {"e/epoch": 2.0, "e/dropped/fc.weight": 3.0, "e/dropped/out.weight": 1.5}


def test_tensorboard_events(tmp_path, tiny_recipe_dict):
    pytest.importorskip(
        "tensorboard", reason="tensorboard is an optional extra: pip install 'paiexport[tensorboard]'"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run(tmp_path, tiny_recipe_dict, ["tensorboard"])
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert len(events.Scalars("epoch/val_acc")) == 2  # train.epochs
    assert "mask_update/drop_fraction" in tags and "final/accuracy/torch" in tags


def test_mlflow_file_store(tmp_path, tiny_recipe_dict):
    pytest.importorskip("mlflow", reason="mlflow is an optional extra: pip install 'paiexport[mlflow]'")
    from mlflow.tracking import MlflowClient

    result = run(tmp_path, tiny_recipe_dict, ["mlflow"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    (run_info,) = client.search_runs([client.get_experiment_by_name("paiexport").experiment_id])
    assert len(client.get_metric_history(run_info.info.run_id, "epoch/train_loss")) == 2
    assert "final/sparsity" in run_info.data.metrics and "mask_update/drop_fraction" in run_info.data.metrics


def test_missing_tracker_package_exits_2(tmp_path, tiny_recipe_dict, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    result = run(tmp_path, tiny_recipe_dict, ["mlflow"])
    assert result.exit_code == 2 and "train.log_to: mlflow is not installed" in result.output
    assert not (tmp_path / "run").exists()
