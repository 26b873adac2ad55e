"""Your model, your data: a factory model through `run` on every real format and every method family."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner
from userdata import write_cifar, write_idx, write_model_file, write_npz, write_png_folder

from paiexport.cli import app

BENCH = {"batch_sizes": [1], "threads": [1], "warmup": 0, "iterations": 3}


def recipe(tmp_path, data: dict, method: dict, **extra) -> str:
    write_model_file(tmp_path, "mynets")
    raw = {
        "name": "mine",
        "data": {"batch_size": 16, "val_fraction": 0.25, **data},
        "model": {"name": "mynets:tiny_resnet", "args": {"width": 8}},
        "sparsity": {"target": 0.5, "distribution": "global", **extra.pop("sparsity", {})},
        "method": method,
        "train": {"epochs": 15, "optimizer": {"name": "sgd", "lr": 0.1}, "lr_schedule": {"name": "cosine"}},
        "export": {"calibration_samples": 8},
        "bench": BENCH,
        **extra,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def all_pass(validation: dict) -> bool:
    """Every file passes every check, #16's chance level included (userdata's images are learnable)."""
    return bool(validation) and all(c["passed"] and not c["broken_checks"] for c in validation.values())


def run_ok(path: str, out) -> dict:
    result = CliRunner().invoke(app, ["run", path, "--out", str(out)])
    assert result.exit_code == 0 and (out / "report.json").is_file(), result.output
    report = json.loads((out / "report.json").read_text())
    assert all_pass(report["validation"]), report["validation"]
    return report


def test_static_on_gzipped_idx(tmp_path):
    path = recipe(
        tmp_path, {"name": "mnist", "path": str(write_idx(tmp_path / "mnist", gz=True))}, {"name": "snip"}
    )
    report = run_ok(path, tmp_path / "run")
    assert report["recipe"]["model"]["name"] == "mynets:tiny_resnet"
    assert abs(report["sparsity"]["reached"] - 0.5) < 0.01


def test_dynamic_on_cifar_with_augment(tmp_path):
    data = {"name": "cifar10", "path": "c10", "augment": {"random_crop": 2, "horizontal_flip": True}}
    write_cifar(tmp_path / "c10", hundred=False)  # relative data.path: found beside the recipe
    run_ok(recipe(tmp_path, data, {"name": "rigl"}), tmp_path / "run")


def test_channel_structured_on_png_folder_normalized(tmp_path):
    import onnx

    root = write_png_folder(tmp_path / "imgs")
    data = {"name": "imagefolder", "path": str(root), "normalize": "auto", "image_size": 8}
    report = run_ok(
        recipe(tmp_path, data, {"name": "snip"}, sparsity={"structure": "channel", "target": 0.25}),
        tmp_path / "run",
    )
    assert report["sparsity"]["reached"] == pytest.approx(0.25, abs=0.03)  # whole output channels
    assert report["compact"] is not None  # compacted where the graph allows (here: file kept dense)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "run" / "model.onnx")).metadata_props}
    assert props["paiexport.dataset"] == "imagefolder" and len(props["paiexport.input_mean"].split(",")) == 3
    # validate reads the same test images and applies the recorded normalization: same accuracy.
    accuracy = f"{report['accuracy']['onnx']['dense']:.2%} on the imagefolder test split (60 samples)"
    onnx_file = str(tmp_path / "run" / "model.onnx")
    for how in (
        ["--recipe", str(tmp_path / "run" / "recipe.yaml")],
        ["--data", "imagefolder", "--data-path", str(root)],
    ):
        result = CliRunner().invoke(app, ["validate", onnx_file, *how])
        assert result.exit_code == 0 and accuracy in result.output, result.output
    result = CliRunner().invoke(app, ["validate", onnx_file, "--data", "npz", "--data-path", str(root)])
    assert result.exit_code == 2 and "was trained on imagefolder, not npz" in result.output


@pytest.mark.parametrize(
    "method",
    [
        {"name": "dense"},
        {"name": "synflow"},
        {"name": "lth", "levels": 1},
        {"name": "gmp", "update_every": 1},
        {"name": "magnitude_after_training"},
        {"name": "set"},
        {"name": "edge_popup"},
    ],
    ids=lambda m: m["name"],
)
def test_every_method_family_with_a_factory_model(tmp_path, method):
    fixed = {"sparsity": {"distribution": "uniform"}} if method["name"] == "edge_popup" else {}
    data = {"name": "npz", "path": str(write_npz(tmp_path / "d.npz"))}
    run_ok(recipe(tmp_path, data, method, **fixed), tmp_path / "run")


def test_bundled_example_runs(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "custom_model" / "recipe.yaml"
    args = ["--set", "train.epochs=1", "--set", "bench.iterations=3", "--set", "model.args.width=8"]
    result = CliRunner().invoke(app, ["run", str(example), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 0, result.output
