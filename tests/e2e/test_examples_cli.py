"""The task examples under examples/ run through `paiexport run` at one epoch (CI size), and a
target of the wrong kind for each example's task is exit 2 naming `task.name` and the data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paiexport.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["train.epochs=1", "bench.iterations=3", "bench.warmup=1", "bench.batch_sizes=[1]"]
# Each example as shipped (its data, its net: a narrower one does not learn in one epoch).
TASKS = {
    "regression": "regression",
    "multilabel": "multilabel",
    "segmentation": "segmentation",
    "custom_task": "custom",
    "char_lm": "language_model",
}


def sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def run(example: str, out: Path, *extra: str):
    recipe = EXAMPLES / example / "recipe.yaml"
    args = ["run", str(recipe), "--out", str(out), *sets([*FAST, "export.calibration_samples=64"]), *extra]
    return CliRunner().invoke(app, args, catch_exceptions=False)


@pytest.mark.parametrize("example", sorted(TASKS))
def test_each_task_example_runs_at_one_epoch(example, tmp_path):
    out = tmp_path / "run"
    result = run(example, out)
    assert result.exit_code == 0, result.output[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["task"]["name"] == TASKS[example]
    assert report["validation"] and all(c["passed"] for c in report["validation"].values())
    # every file passed, so none is at the task's baseline: one epoch already learns something
    assert report["task"]["primary"] in report["metrics"]["torch"]
    if example == "segmentation":
        compact_is_a_narrower_unet_that_matches(report, out)
    if example == "char_lm":
        token_ids_with_a_dynamic_sequence(out)


def compact_is_a_narrower_unet_that_matches(report: dict, out: Path) -> None:
    compact = report["compact"]
    assert compact["params_after"] < compact["params_before"]
    assert report["validation"]["compact"]["passed"] and report["validation"]["compact"]["parity"]
    assert (out / "model.compact.onnx").stat().st_size < (out / "model.onnx").stat().st_size


def token_ids_with_a_dynamic_sequence(out: Path) -> None:
    """The language model's files take int64 token ids of any length (export.dynamic_axes)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    graph = onnx.load(out / "model.onnx").graph
    (tokens,) = graph.input
    assert tokens.name == "tokens" and tokens.type.tensor_type.elem_type == onnx.TensorProto.INT64
    for name in ("model.onnx", "model.int8.onnx"):
        session = ort.InferenceSession(str(out / name))
        for length in (17, 128):
            ids = np.random.default_rng(length).integers(0, 90, size=(2, length))
            assert session.run(None, {"tokens": ids})[0].shape == (2, length, 96)


# Per example, a factory whose targets its task refuses: (task, input shape, targets, the
# line's expected part). examples/custom_model is a classification recipe.
BAD = {
    "regression": ("regression", (10,), "torch.randint(0, 9, (n,))", "targets are int64"),
    "multilabel": ("multilabel", (60,), "torch.randint(0, 2, (n,)).float()", "one 0/1 row of labels"),
    "segmentation": ("segmentation", (1, 32, 32), "torch.rand(n, 32, 32)", "targets are float32"),
    "custom_task": ("custom", (8,), "torch.rand(n) > 0.5", "targets are bool"),
    "char_lm": ("language_model", (64,), "torch.rand(n, 64)", "targets are float32"),
    "custom_model": ("classification", (1, 40), "torch.randint(0, 3, (n, 2))", "has a target of shape (2,)"),
}
FACTORY = """
import torch
from torch.utils.data import TensorDataset

def datasets():
    def make(n):
        return TensorDataset(torch.randn(n, *{shape}), {targets})
    return make(64), make(16)
"""


@pytest.mark.parametrize("example", sorted(BAD))
def test_a_target_of_the_wrong_kind_is_exit_2_naming_the_task_and_the_data(example, tmp_path, monkeypatch):
    task, shape, targets, expected = BAD[example]
    module = f"badtargets_{example}"
    (tmp_path / f"{module}.py").write_text(FACTORY.format(targets=targets, shape=shape))
    monkeypatch.chdir(tmp_path)  # the factory is found in the current folder
    out = tmp_path / "run"
    try:
        result = run(example, out, "--set", f"data.name={module}:datasets")
    finally:
        sys.modules.pop(module, None)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert f"task.name {task}" in lines[0] and f"data.name: {module}:datasets: train" in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert not out.exists()
