"""npz archives: read, and refused in one line naming the array (terabyte headers, objects, NaN, labels)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from userdata import write_npz

from paiexport.cli import app
from paiexport.data import DataConfig, load_dataset
from paiexport.errors import UserError
from paiexport.tasks import task_by_name


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


def _npz(path: Path, **arrays: np.ndarray | bytes) -> Path:
    """An npz of the four arrays (a small valid set), with some replaced; bytes are a raw .npy member."""
    base = {
        "x_train": np.zeros((4, 2)),
        "y_train": np.array([0, 1, 0, 1]),
        "x_test": np.zeros((2, 2)),
        "y_test": np.array([0, 1]),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in {**base, **arrays}.items():
            if isinstance(value, np.ndarray):
                buffer = io.BytesIO()
                np.save(buffer, value)
                value = buffer.getvalue()
            archive.writestr(f"{name}.npy", value)
    return path


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x_train": _npy_header((10**6, 10**6), "<f8") + bytes(64)},
            r"x_train declares shape \(1000000, 1000000\)",
        ),
        ({"x_test": _npy_header((2, 2), "|O") + bytes(32)}, r"x_test holds object, not plain numbers"),
        ({"x_train": np.array([["a", "b"]] * 4)}, r"x_train holds <U1, not plain numbers"),
        ({"x_train": np.array(3.0)}, r"x_train has shape \(\); it needs \(samples"),
        ({"x_train": np.array([[0.0, np.nan]] * 4)}, r"x_train holds NaN/inf values"),
        ({"x_test": np.array([[np.inf, 0.0]] * 2)}, r"x_test holds NaN/inf values"),
        (
            {"y_train": np.array([0, 1, 2**63 + 5, 1], np.uint64)},
            r"y_train: label 9223372036854775813 outside",
        ),
        (
            {"x_test": np.zeros((0, 2)), "y_test": np.zeros(0, int)},
            r"x_test holds no samples; the test split",
        ),
        ({"y_train": np.zeros(4, int)}, r"y_train: the training split holds only class 0"),
    ],
    ids=["terabytes", "object", "strings", "0-d", "nan", "inf", "uint64", "empty-test", "one-class"],
)
def test_npz_refusals_name_the_array(tmp_path, arrays, message):
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError, match=r"d\.npz: " + message):
        load_dataset(cfg(name="npz", path=str(path)), seed=0)


def test_npz_unsigned_labels_that_fit_are_read(tmp_path):
    labels = {"y_train": np.array([0, 1, 2, 1], np.uint64), "y_test": np.array([2, 0], np.uint8)}
    data = load_dataset(cfg(name="npz", path=str(_npz(tmp_path / "d.npz", **labels))), seed=0)
    assert data.num_classes == 3 and data.test.y.tolist() == [2, 0]
    with pytest.raises(UserError, match=r"d\.npz: y_train: label 2 outside \[0, 2\)"):
        load_dataset(cfg(name="npz", path=str(tmp_path / "d.npz"), num_classes=2), seed=0)


def test_npz_nan_inputs_exit_2_through_the_cli(tmp_path, write_recipe, tiny_recipe_dict):
    """Refused up front (it used to train and be reported as diverged)."""
    path = write_npz(tmp_path / "d.npz", n_train=40, n_test=8)
    arrays = dict(np.load(path))
    arrays["x_train"][3, 0, 2, 2] = np.nan
    np.savez(path, **arrays)
    recipe = write_recipe({**tiny_recipe_dict, "data": {"name": "npz", "path": str(path), "batch_size": 16}})
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "d.npz: x_train holds NaN/inf values" in result.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_npz_and_missing_array(tmp_path):
    data = load_dataset(
        cfg(name="npz", path=str(write_npz(tmp_path / "d.npz", n_train=40, n_test=16))), seed=0
    )
    assert data.input_shape == (3, 12, 12) and data.num_classes == 4 and len(data.train) == 30
    with pytest.raises(UserError, match=r"bad.npz: npz is missing array y_test"):
        load_dataset(cfg(name="npz", path=str(write_npz(tmp_path / "bad.npz", drop="y_test"))), seed=0)


def test_labels_outside_num_classes(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    with pytest.raises(UserError, match=r"label 3 outside \[0, 3\)"):
        load_dataset(cfg(name="npz", path=str(path), num_classes=3), seed=0)


def test_a_tasks_targets_keep_their_dtype_and_shape(tmp_path):
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(10, 3)).astype(np.float32)
    y, yt = rng.normal(size=(40, 2)), rng.normal(size=(10, 2))  # float64, two targets per sample
    path = _npz(tmp_path / "r.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    data = load_dataset(
        cfg(name="npz", path=str(path), val_fraction=0.25), seed=0, task=task_by_name("regression")
    )
    assert data.task.name == "regression" and data.num_classes == 2  # the model's output width
    assert data.train.y.dtype == torch.float32 and tuple(data.train.y.shape) == (30, 2)
    np.testing.assert_allclose(data.test.y.numpy(), yt.astype(np.float32))
    assert (len(data.train), len(data.val)) == (30, 10)


def test_integer_targets_for_regression_exit_2_naming_the_task_and_array(tmp_path):
    x = np.zeros((8, 3), np.float32)
    path = _npz(tmp_path / "r.npz", x_train=x, y_train=np.arange(8), x_test=x, y_test=np.arange(8))
    with pytest.raises(UserError) as caught:
        load_dataset(cfg(name="npz", path=str(path)), seed=0, task=task_by_name("regression"))
    assert str(caught.value) == (
        f"task.name regression: {path}: y_train: targets are int64(8,); regression targets are floats "
        "(nothing is cast)"
    )


def test_a_language_models_tokens_are_its_targets_and_stay_integer(tmp_path):
    tokens = np.arange(5 * 6, dtype=np.int64).reshape(5, 6) % 7
    path = tmp_path / "lm.npz"
    np.savez(path, x_train=tokens, x_test=tokens[:2])  # no y_*: the tokens are the targets
    data = load_dataset(
        cfg(name="npz", path=str(path), val_fraction=0.0), seed=0, task=task_by_name("language_model")
    )
    assert data.train.x.dtype == torch.int64 and torch.equal(data.train.x, data.train.y)
    assert data.num_classes == 7  # the vocabulary the tokens need
    with pytest.raises(UserError, match="missing array y_train, y_test"):
        load_dataset(cfg(name="npz", path=str(path)), seed=0, task=task_by_name("regression"))
