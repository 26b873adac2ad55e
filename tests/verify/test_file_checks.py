"""file_checks.py: `paiexport validate`'s checks on one file, on tiny hand-built graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from tinyonnx import FEATURES, linear_file, qdq_linear_file, save_graph, separating_weight, tensor
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.verify.eval_data import validation_data
from paiexport.verify.file_checks import check_file, split_seed
from paiexport.verify.rules import over_limit_reason

FLOAT_CHECKS = ["checker", "load", "accuracy", "chance_level", "parity", "accuracy_match"]


def names(report) -> list[str]:
    return [c.name for c in report.checks]


@pytest.fixture(scope="module")
def weight() -> np.ndarray:
    return separating_weight()


def test_a_float_file_against_itself_passes_every_check_and_reports_its_stored_sparsity(tmp_path, weight):
    w = weight.copy()
    w[:10, 0] = 0.0  # 10 of 160 weights stored as zeros
    path = linear_file(tmp_path / "m.onnx", w)
    report = check_file(path, "synthetic", path, 1.0, seed=0)
    assert names(report) == FLOAT_CHECKS and all(c.ok for c in report.checks)
    assert report.sparsity == {"W": 10 / 160} and report.not_deployable is None
    assert report.checks[2].detail == "100.00% on the synthetic test split (128 samples)"


def test_another_float_file_fails_parity_against_the_reference(tmp_path, weight):
    path = linear_file(tmp_path / "m.onnx", weight)
    other = linear_file(tmp_path / "other.onnx", weight * 2)  # same predictions, other logits
    report = check_file(path, "synthetic", other, 1.0, seed=0)
    by_name = {c.name: c for c in report.checks}
    assert not by_name["parity"].ok and "vs other.onnx" in by_name["parity"].detail
    assert by_name["accuracy_match"].ok  # the same argmax everywhere


def quantized(tmp_path, weight, levels: int):
    """`weight` stored as int8 in [-levels, levels]; the accuracy numpy computes for it."""
    scale = float(np.abs(weight).max() / levels)
    wq = np.round(weight / scale)
    path = qdq_linear_file(tmp_path / "q.onnx", wq, scale)
    return path, wq * np.float32(scale)


def test_a_quantized_file_against_a_float_reference_is_judged_by_its_drop(tmp_path, weight):
    reference = linear_file(tmp_path / "m.onnx", weight)
    path, _dequantized = quantized(tmp_path, weight, 127)
    report = check_file(path, "synthetic", reference, 1.0, seed=0)
    assert names(report) == ["checker", "load", "accuracy", "chance_level", "accuracy_drop"]
    assert all(c.ok for c in report.checks) and report.not_deployable is None
    # the same file as its own reference: both quantized, so parity is required again
    assert "parity" in names(check_file(path, "synthetic", path, 1.0, seed=0))


def test_a_quantized_file_over_the_limit_is_not_deployable_but_no_check_fails(tmp_path, weight):
    from paiexport.data import DataConfig, load_dataset

    test = load_dataset(DataConfig(name="synthetic"), seed=0).test
    x, labels = test.x.numpy().reshape(len(test), FEATURES), test.y.numpy()
    lossy = weight.copy()
    lossy[:, 3] = 0.0  # class 3 is lost: a file worse than its float reference
    path, dequantized = quantized(tmp_path, lossy, 127)
    acc = float(((x @ dequantized).argmax(axis=1) == labels).mean())
    assert 0.5 < acc < 1.0  # above chance level, below the reference's 100%
    report = check_file(path, "synthetic", linear_file(tmp_path / "m.onnx", weight), 0.0, seed=0)
    assert all(c.ok for c in report.checks)
    assert report.not_deployable == over_limit_reason((1.0 - acc) * 100, 0.0)


def test_a_file_that_cannot_run_on_the_data_fails_the_input_check_and_stops(tmp_path):
    shape = numpy_helper.from_array(np.array([-1, 7], np.int64), "shape")  # 40 features: no 7 columns
    node = helper.make_node("Reshape", ["input", "shape"], ["logits"])
    path = save_graph(
        tmp_path / "r.onnx",
        [node],
        [tensor("input", ["n", 1, FEATURES])],
        [tensor("logits", ["m", 7])],
        [shape],
    )
    report = check_file(path, "synthetic", None, 1.0, seed=0)
    assert names(report) == ["checker", "load", "input"] and not report.checks[-1].ok
    assert report.checks[-1].detail.startswith("cannot run on synthetic inputs of shape [1, 40]: ")


def test_a_reference_onnxruntime_cannot_run_is_bad_input(tmp_path, weight):
    path = linear_file(tmp_path / "m.onnx", weight)
    narrow = tmp_path / "narrow.onnx"
    node = helper.make_node("MatMul", ["input", "W"], ["logits"])  # takes (n, 1, 20)
    w = numpy_helper.from_array(np.ones((20, 4), np.float32), "W")
    save_graph(narrow, [node], [tensor("input", ["n", 1, 20])], [tensor("logits", ["n", 1, 4])], [w])
    with pytest.raises(UserError, match=rf"^--reference {narrow}: onnxruntime cannot run it \(\w+\)$"):
        check_file(path, "synthetic", narrow, 1.0, seed=0)


def test_a_file_recording_another_dataset_is_refused(tmp_path, weight):
    path = linear_file(tmp_path / "m.onnx", weight, meta={"paiexport.dataset": "mnist1d"})
    with pytest.raises(UserError, match=rf"^--data synthetic: {path} was trained on mnist1d, not synthetic$"):
        check_file(path, "synthetic", None, 1.0)


@pytest.mark.parametrize(
    ("given", "stored", "seed"),
    [(5, "7", 5), (None, "7", 7), (None, "-3", -3), (None, "x1", 0), (None, None, 0)],
)
def test_split_seed_is_the_given_one_else_the_files_else_0(given, stored, seed):
    model = helper.make_model(helper.make_graph([], "g", [], []))
    if stored is not None:
        helper.set_model_props(model, {"paiexport.seed": stored})
    assert split_seed(model, given) == seed


def test_the_seed_chooses_the_test_split(tmp_path, weight):
    """A file recording seed 1 is checked on seed 1's split (other samples than seed 0's)."""
    half = weight.copy()
    half[:, 1:] = 0.0  # right on class 0 only: the accuracy depends on which samples are drawn
    plain = check_file(linear_file(tmp_path / "a.onnx", half), "synthetic", None, 1.0)
    seeded = linear_file(tmp_path / "b.onnx", half, meta={"paiexport.seed": "1"})
    assert check_file(seeded, "synthetic", None, 1.0).checks[2].detail != plain.checks[2].detail
    assert check_file(seeded, "synthetic", None, 1.0, seed=0).checks[2].detail == plain.checks[2].detail


def test_a_foreign_file_without_metadata_gets_the_checks_that_need_no_reference(tmp_path):
    """A foreign file with no paiexport metadata is checked (no dataset recorded: nothing refused)."""
    path = linear_file(tmp_path / "m.onnx", np.zeros((FEATURES, 4), np.float32))
    assert not onnx.load(str(path)).metadata_props
    report = check_file(path, "synthetic", None, 1.0)
    assert names(report) == ["checker", "load", "accuracy", "chance_level"]
    assert not report.checks[-1].ok  # constant logits: no better than guessing


def regression_files(tmp_path):
    """A linear regression ONNX file (3 -> 1) that fits its npz data, and the data."""
    from torch import nn as tnn

    from paiexport.export.torch_export import save_onnx, to_onnx

    g = torch.Generator().manual_seed(0)
    model = tnn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        model.bias.fill_(0.25)
    x = torch.randn(64, 3, generator=g)
    y = (model(x)[:, 0] + 0.1 * torch.randn(64, generator=g)).detach().numpy().astype(np.float64)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=x.numpy(), y_train=y, x_test=x.numpy()[:32], y_test=y[:32])
    onnx_file = tmp_path / "reg.onnx"
    save_onnx(to_onnx(model, (3,), 18), onnx_file)
    return onnx_file, data


def test_a_foreign_file_is_judged_by_the_task_given(tmp_path):
    onnx_file, data = regression_files(tmp_path)
    report = check_file(onnx_file, validation_data("npz", str(data)), None, 1.0, task="regression")
    by_name = {c.name: c for c in report.checks}
    assert by_name["r2"].ok and by_name["r2"].detail.startswith("r2 0.9")  # noise 0.1 on a spread ≈ 2.3
    assert by_name["baseline"].ok and not [c for c in report.checks if not c.ok]


def test_an_output_the_task_cannot_read_is_exit_2_naming_its_shape(tmp_path):
    onnx_file, data = regression_files(tmp_path)
    result = CliRunner().invoke(
        app, ["validate", str(onnx_file), "--data", "npz", "--data-path", str(data), "--task", "segmentation"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "task.name segmentation" in result.output
    wide = tmp_path / "wide.npz"  # two targets per sample for a file with one output
    arrays = dict(np.load(data))
    np.savez(
        wide,
        **{
            **arrays,
            "y_train": np.stack([arrays["y_train"]] * 2, 1),
            "y_test": np.stack([arrays["y_test"]] * 2, 1),
        },
    )
    shaped = CliRunner().invoke(
        app, ["validate", str(onnx_file), "--data", "npz", "--data-path", str(wide), "--task", "regression"]
    )
    assert shaped.exit_code == 2 and "output of shape (32, 1) for targets of shape (32, 2)" in shaped.output
    classes = CliRunner().invoke(
        app, ["validate", str(onnx_file), "--data", "mnist1d", "--task", "regression"]
    )
    assert classes.exit_code == 2 and "task.name regression" in classes.output
    unknown = CliRunner().invoke(
        app, ["validate", str(onnx_file), "--data", "mnist1d", "--task", "detection"]
    )
    assert unknown.exit_code == 2 and "--task detection: not a built-in task" in unknown.output
