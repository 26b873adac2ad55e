"""`train.log_to: [tensorboard, mlflow]`: every metrics.jsonl record also goes to experiment trackers.

Both are optional extras (`pip install paiexport[tensorboard]`, `[mlflow]`) writing local file
stores inside the run folder (`tensorboard/`, `mlflow.db`); metrics.jsonl is always written.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from paiexport.errors import UserError
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.metrics_log import Record, as_dict


class Tracker(StrEnum):
    tensorboard = "tensorboard"
    mlflow = "mlflow"


def check_installed(trackers: list[Tracker]) -> None:
    """Refuse a tracker whose package is missing before any work starts."""
    modules = {Tracker.tensorboard: "torch.utils.tensorboard", Tracker.mlflow: "mlflow"}
    for tracker in trackers:
        try:
            __import__(modules[tracker])
        except ImportError:
            raise UserError(
                f"train.log_to: {tracker.value} is not installed (pip install 'paiexport[{tracker.value}]')"
            ) from None


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a record as 'a/b' names (booleans and strings are not metrics)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


class TrackerCallback(TrainCallback):
    """Forwards every logged record (epochs, mask updates, LTH levels) to the open trackers."""

    def __init__(self, trackers: list[Tracker], root: Path, run_name: str) -> None:
        check_installed(trackers)
        self.sinks: list[Callable[[dict[str, float], int], None]] = []
        self.closers: list[Callable[[], None]] = []
        self.records = 0  # a run-wide step: methods may train several times (LTH levels)
        for tracker in trackers:
            (self._tensorboard if tracker is Tracker.tensorboard else self._mlflow)(root, run_name)

    def _tensorboard(self, root: Path, _name: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(root / "tensorboard"))
        self.sinks.append(lambda values, step: [writer.add_scalar(k, v, step) for k, v in values.items()])
        self.closers.append(writer.close)

    def _mlflow(self, root: Path, name: str) -> None:
        from mlflow.tracking import MlflowClient

        # A local SQLite store: mlflow 3 refuses new runs in the plain-folder store.
        client = MlflowClient(tracking_uri=f"sqlite:///{(root / 'mlflow.db').resolve()}")
        found = client.get_experiment_by_name("paiexport")  # a resumed run's store has it
        experiment = found.experiment_id if found else client.create_experiment("paiexport")
        run_id = client.create_run(experiment, run_name=name).info.run_id
        self.sinks.append(
            lambda values, step: client.log_batch(run_id, metrics=_mlflow_metrics(values, step))
        )
        self.closers.append(lambda: client.set_terminated(run_id))

    def on_train_begin(self, state: TrainState) -> None:
        inner = state.log

        def log(record: Record) -> None:
            inner(record)
            self.log(record)

        state.log = log

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records}  # checkpointed: a resumed run continues the step axis

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = state["records"]

    def log(self, record: Record, prefix: str | None = None) -> None:
        self.records += 1
        record = as_dict(record)
        group = prefix or record.get("event") or ("level" if "level" in record else "epoch")
        values = flatten({k: v for k, v in record.items() if k != "event"}, f"{group}/")
        for sink in self.sinks:
            sink(values, self.records)

    def finish(self, figures: dict[str, Any]) -> None:
        """The report's final figures, then the stores are closed."""
        self.log(figures, "final")
        for close in self.closers:
            close()


def _mlflow_metrics(values: dict[str, float], step: int) -> list[Any]:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, value, now, step) for key, value in values.items()]
