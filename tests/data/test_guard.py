"""Hostile user factories (#20): bad samples, code that exits, DataLoader workers, tied weights.

Every refusal is one line naming `data.name` or `model.name`, exit 2; a weight shared by two
layers is counted and masked once, so the sparsity target is reached exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import paiexport
from paiexport.data import DataConfig, DataSplits, Split, load_dataset
from paiexport.errors import UserError
from paiexport.importing import import_callable
from paiexport.methods import METHODS, SelectionContext, make_method
from paiexport.models.factory import build_factory_model
from paiexport.sparsity.masks import attach_masks, get_masks, prunable_weights
from paiexport.sparsity.types import SparsityConfig
from paiexport.training.compact import shrink_for_training
from paiexport.training.config import TrainConfig
from paiexport.training.loop import train

DATA = '''
import sys

import torch
from torch.utils.data import Dataset


def _xy(n):
    """Class k lights up feature k: learnable in an epoch or two."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 4
    x = 0.3 * torch.randn(n, 1, 8, generator=g)
    x[torch.arange(n), 0, y] += 3.0
    return x, y


class Samples(Dataset):
    """`bad` maps an index to what that sample does instead of being read."""

    def __init__(self, n, bad=None, targets=None, label=None):
        self.x, self.y = _xy(n)
        self.bad, self.label = bad or {}, label
        if targets is not None:
            self.targets = self.y.tolist() if targets == "true" else targets

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        what = self.bad.get(i)
        if what == "raise":
            raise OSError(f"disk sector {i} unreadable\\nsecond line")
        if what == "exit":
            sys.exit(3)
        if what == "label12":
            return self.x[i], 12
        if what == "short":
            return self.x[i][:, :5], int(self.y[i])
        return self.x[i], int(self.y[i]) if self.label is None else self.label


def good():
    return Samples(128), Samples(32)


def string_labels():
    return Samples(64, label="cat"), Samples(16, label="cat")


def string_targets():
    return Samples(64, targets=["cat"] * 64), Samples(16)


def late_error():
    return Samples(64, {37: "raise"}), Samples(16)


def late_targets():
    return Samples(64, {37: "raise"}, targets="true"), Samples(16, targets="true")


def late_test():
    return Samples(64, targets="true"), Samples(16, {9: "raise"}, targets="true")


def lying_targets():
    return Samples(64, {5: "label12"}, targets="true"), Samples(16, targets="true")


def ragged():
    return Samples(64, {3: "short"}), Samples(16)


def exit_in_getitem():
    return Samples(64, {20: "exit"}, targets="true"), Samples(16, targets="true")


def exits():
    sys.exit(0)
'''

NETS = '''
import sys

import torch
from torch import nn


def mlp(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], 16), nn.ReLU(), nn.Linear(16, num_classes))


class Tied(nn.Module):
    """`b` uses `a`'s weight: one tensor, two layers."""

    def __init__(self, d, num_classes):
        super().__init__()
        self.a = nn.Linear(d, d)
        self.b = nn.Linear(d, d)
        self.b.weight = self.a.weight
        self.out = nn.Linear(d, num_classes)

    def forward(self, x):
        x = x.flatten(1)
        return self.out(torch.relu(self.b(torch.relu(self.a(x)))))


def tied(num_classes, input_shape):
    return Tied(input_shape[-1], num_classes)


def exits_model(num_classes):
    sys.exit(0)


class Halt(BaseException):
    pass


def halts(num_classes):
    raise Halt("stopped here")


def interrupted(num_classes):
    raise KeyboardInterrupt
'''

EXITS_ON_IMPORT = "import sys\nsys.exit()\n\ndef f(num_classes=2):\n    pass\n"
ROOT = Path(paiexport.__file__).parents[1]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "hostdata.py").write_text(DATA)
    (tmp_path / "hostnets.py").write_text(NETS)
    (tmp_path / "exitdata.py").write_text(EXITS_ON_IMPORT)
    (tmp_path / "exitnets.py").write_text(EXITS_ON_IMPORT)
    return tmp_path


def run_cli(
    folder: Path, dataset: str, model: str = "hostnets:mlp", workers: int = 0, **sections
) -> subprocess.CompletedProcess:
    """`python -m paiexport run` on a recipe beside the factories (fresh process: sys.exit is real)."""
    raw = {
        "name": "hostile",
        "seed": 0,
        "data": {"name": dataset, "batch_size": 16, "val_fraction": 0.25, "num_workers": workers},
        "model": {"name": model},
        "sparsity": {"target": 0.5, "distribution": "global"},
        "method": {"name": "snip"},
        "train": {"epochs": 1, "optimizer": {"name": "sgd", "lr": 0.1}},
        "export": {"formats": ["dense"]},
        "bench": {"batch_sizes": [1], "threads": [1], "warmup": 0, "iterations": 1},
        **sections,
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "paiexport", "run", "recipe.yaml", "--out", "run"]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def refused(result: subprocess.CompletedProcess, folder: Path) -> str:
    """The one line of an exit-2 refusal; nothing else printed, no run folder."""
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output[-3000:]
    assert len(output.splitlines()) == 1 and "Traceback" not in output, output[-3000:]
    assert not (folder / "run").exists()
    return output


def cfg(name: str, **kw) -> DataConfig:
    return DataConfig.model_validate({"name": name, "val_fraction": 0.25, **kw})


def train_in(folder: Path, model: nn.Module, data: DataSplits, callbacks: list = (), epochs: int = 1) -> Any:
    """The library's training loop, batches of 16, writing into `folder`."""
    return train(
        model,
        data,
        TrainConfig(epochs=epochs),
        batch_size=16,
        seed=0,
        metrics_path=folder / "m.jsonl",
        checkpoint_dir=folder / "ck",
        callbacks=list(callbacks),
    )


def read_all(data: DataSplits) -> None:
    """Every split read the way training and evaluation read them."""
    for split in (data.train, data.val):
        for _ in split.batches(16, torch.Generator().manual_seed(0)):
            pass
    assert len(data.test.x) == len(data.test)


# ---------------------------------------------------------------- bad samples, found up front or as read


def test_string_labels_are_refused_before_training(folder):
    with pytest.raises(UserError) as caught:
        load_dataset(cfg("hostdata:string_labels"), seed=0, folders=[folder])
    cat = (
        "train sample 0 has label 'cat': task.name classification needs integer class indices "
        "(nothing is cast; set task.name for another task)"
    )
    assert str(caught.value) == f"data.name: hostdata:string_labels: {cat}"
    with pytest.raises(UserError) as caught:
        load_dataset(cfg("hostdata:string_targets"), seed=0, folders=[folder])
    assert str(caught.value) == (
        "data.name: hostdata:string_targets: train: .targets must hold one integer class index per sample"
    )


def test_a_sample_that_raises_is_one_line_with_its_index(folder):
    late = "train sample 37 raised OSError: disk sector 37 unreadable"
    with pytest.raises(UserError) as caught:  # no .targets: every label is read up front
        load_dataset(cfg("hostdata:late_error"), seed=0, folders=[folder])
    assert str(caught.value) == f"data.name: hostdata:late_error: {late}"
    data = load_dataset(cfg("hostdata:late_targets"), seed=0, folders=[folder])  # labels from .targets
    with pytest.raises(UserError) as caught:
        read_all(data)
    assert str(caught.value) == f"data.name: hostdata:late_targets: {late}"
    data = load_dataset(cfg("hostdata:late_test"), seed=0, folders=[folder])
    with pytest.raises(UserError) as caught:  # the test split, read for evaluation
        read_all(data)
    assert (
        str(caught.value)
        == "data.name: hostdata:late_test: test sample 9 raised OSError: disk sector 9 unreadable"
    )


def test_labels_outside_the_classes_are_refused_as_read(folder, tmp_path):
    data = load_dataset(cfg("hostdata:lying_targets"), seed=0, folders=[folder])
    assert data.num_classes == 4  # what .targets say; sample 5 says 12
    with pytest.raises(UserError) as caught:
        read_all(data)
    lying = "data.name: hostdata:lying_targets: train sample 5 has label 12 outside [0, 4)"
    assert str(caught.value) == f"{lying} (counted from .targets)"
    data = load_dataset(cfg("hostdata:lying_targets", num_classes=10), seed=0, folders=[folder])
    with pytest.raises(
        UserError, match=r"sample 5 has label 12 outside \[0, 10\) \(set by data.num_classes\)"
    ):
        train_in(tmp_path / "lying", nn.Sequential(nn.Flatten(), nn.Linear(8, 10)), data)

    class Broken(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("model bug")

    # The guard wraps only the dataset's own code: a model's error stays what it is.
    with pytest.raises(RuntimeError, match="model bug"):
        train_in(
            tmp_path / "broken", Broken(8, 4), load_dataset(cfg("hostdata:good"), seed=0, folders=[folder])
        )


def test_a_sample_of_another_shape_is_refused_up_front(folder):
    with pytest.raises(UserError) as caught:
        load_dataset(cfg("hostdata:ragged"), seed=0, folders=[folder])
    assert (
        str(caught.value)
        == "data.name: hostdata:ragged: train sample 3 has shape (1, 5), the first sample (1, 8)"
    )


# ---------------------------------------------------------------- through the CLI: workers and sys.exit


@pytest.mark.parametrize(
    ("name", "workers", "message"),
    [
        ("late_targets", 1, "train sample 37 raised OSError: disk sector 37 unreadable"),
        ("lying_targets", 1, "train sample 5 has label 12 outside [0, 4) (counted from .targets)"),
        ("exit_in_getitem", 0, "train sample 20 raised SystemExit: 3"),
        ("exit_in_getitem", 1, "train sample 20 raised SystemExit: 3"),
    ],
)
def test_a_workers_error_is_the_same_one_line(folder, name, workers, message):
    """The line the direct calls above give without workers; a worker's traceback is not shown."""
    result = run_cli(folder, f"hostdata:{name}", workers=workers)
    assert refused(result, folder) == f"error: data.name: hostdata:{name}: {message}"


@pytest.mark.parametrize(
    ("data", "model", "message"),
    [
        ("exitdata:f", "hostnets:mlp", "data.name: importing exitdata raised SystemExit"),
        ("hostdata:exits", "hostnets:mlp", "data.name: hostdata:exits raised SystemExit: 0"),
        ("hostdata:good", "exitnets:f", "model.name: importing exitnets raised SystemExit"),
        ("hostdata:good", "hostnets:exits_model", "model.name: hostnets:exits_model raised SystemExit: 0"),
    ],
)
def test_code_that_exits_is_refused_naming_the_field(folder, data, model, message):
    assert refused(run_cli(folder, data, model), folder) == f"error: {message}"


def test_other_base_exceptions_of_a_factory_but_not_ctrl_c(folder):
    with pytest.raises(UserError) as caught:
        build_factory_model("hostnets:halts", {}, (1, 8), 4, [folder])
    assert str(caught.value) == "model.name: hostnets:halts raised Halt: stopped here"
    with pytest.raises(KeyboardInterrupt):
        build_factory_model("hostnets:interrupted", {}, (1, 8), 4, [folder])


# ---------------------------------------------------------------- tied weights


def unique_sparsity(model: nn.Module) -> float:
    """Zeros over every distinct prunable tensor, each counted once however many layers hold it."""
    tensors = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Linear)}
    zeros = sum(int((w == 0).sum()) for w in tensors.values())
    return zeros / sum(w.numel() for w in tensors.values())


def test_a_tied_weight_is_counted_and_masked_once_end_to_end(folder):
    import onnxruntime as ort

    result = run_cli(
        folder, "hostdata:good", "hostnets:tied", train={"epochs": 3, "optimizer": {"name": "sgd", "lr": 0.1}}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = folder / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["sparsity"]["reached"] == 0.5 and set(report["sparsity"]["per_layer"]) == {
        "a.weight",
        "out.weight",
    }
    model = import_callable("hostnets:tied", [folder], "model.name")(num_classes=4, input_shape=(1, 8))
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    assert unique_sparsity(model) == 0.5  # 48 of the 96 distinct weights
    masks = torch.load(run / "masks.pt", weights_only=True)
    assert set(masks) == {"a.weight", "out.weight"}
    for name, mask in masks.items():
        weight = prunable_weights(model)[name]
        assert torch.all(weight[~mask] == 0) and torch.all(
            weight[mask] != 0
        )  # pruned stay zero after training
    x = torch.randn(5, 1, 8)
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(onnx_out, model.eval()(x).detach().numpy(), atol=1e-5)


def tied_context(folder: Path, method: str) -> tuple[nn.Module, SelectionContext, DataSplits]:
    torch.manual_seed(0)
    model = build_factory_model("hostnets:tied", {}, (8,), 4, [folder])
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 4
    x = torch.randn(64, 8, generator=g) + torch.nn.functional.one_hot(y, 8) * 3.0
    split = Split(x, y)
    data = DataSplits(split, split, split, input_shape=(8,), num_classes=4)
    distribution = "uniform" if method in {"edge_popup", "supermask"} else "global"
    sparsity = SparsityConfig(target=0.5, distribution=distribution)
    return model, SelectionContext(model, data, sparsity, batch_size=16), data


@pytest.mark.parametrize("method", ["random", "synflow", "rigl", "edge_popup"])
def test_every_kind_of_method_prunes_a_tied_weight_once(folder, tmp_path, method):
    model, ctx, data = tied_context(folder, method)

    def trainer(net, callbacks, *, epochs=None, tag="", checkpoint=None):
        return train_in(tmp_path / f"fit{tag}", net, data, callbacks, epochs or 2)

    make_method(METHODS[method].config_class()).fit(ctx, trainer)
    assert model.a.weight is model.b.weight  # still one tensor
    assert set(get_masks(model)) == {"a.weight", "out.weight"}
    assert unique_sparsity(model) == 0.5


def test_train_compact_refuses_to_untie_a_weight(folder):
    model, ctx, _ = tied_context(folder, "snip")
    attach_masks(model, make_method(METHODS["snip"].config_class()).select(ctx))
    with pytest.raises(UserError) as caught:
        shrink_for_training(model, torch.zeros(1, 8))
    assert str(caught.value).startswith("train.compact: a.weight and b.weight are one tied tensor")
