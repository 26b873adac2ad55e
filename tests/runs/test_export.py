"""`paiexport export` runs the stages `paiexport run` ends with: the same files, byte for byte.

Each run here is tiny (1-2 epochs of the synthetic MLP, or a few channels of cnn1d).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from typer.testing import CliRunner

import paiexport.bench.deploy
import paiexport.export.build
from paiexport.cli import app
from paiexport.export.metadata import INPUT_MEAN, INPUT_STD, read_metadata
from paiexport.paths import RunPaths, level_phase

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def run(write_recipe, raw: dict, out: Path, *sets: str) -> Path:
    overrides = [item for s in sets for item in ("--set", s)]
    result = invoke("run", write_recipe(raw), "--out", out, *overrides)
    assert result.exit_code == 0, result.output
    return out


def export(source: Path, out: Path, *args: str) -> Path:
    result = invoke("export", source, "--out", out, *args)
    assert result.exit_code == 0, result.output
    return out


def onnx_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("model*.onnx"))}


def assert_same_files(run_dir: Path, export_dir: Path) -> None:
    """Every ONNX file of the run, byte for byte (no metadata key records a time)."""
    ran, exported = onnx_files(run_dir), onnx_files(export_dir)
    assert sorted(exported) == sorted(ran)
    for name, blob in ran.items():
        if exported[name] != blob:
            theirs, ours = (
                read_metadata(onnx.load_from_string(blob)),
                read_metadata(onnx.load(export_dir / name)),
            )
            differs = {
                k: (theirs.get(k), ours.get(k))
                for k in theirs.keys() | ours.keys()
                if theirs.get(k) != ours.get(k)
            }
            pytest.fail(f"{name} differs from the run's; metadata differences: {differs}")


def channel_recipe(raw: dict) -> dict:
    """A train.compact run: cnn1d with a few channels, half of them removed at selection."""
    raw["model"] = {"name": "cnn1d", "args": {"channels": [8, 8, 8], "hidden": 16}}
    raw["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    raw["train"].update({"epochs": 1, "compact": True})
    raw["export"]["formats"] = ["dense", "compact", "sparse"]
    return raw


@pytest.fixture
def steady_latency(monkeypatch):
    """Every file equally fast: the `auto` deploy choice no longer depends on timing noise."""
    monkeypatch.setattr(paiexport.bench.deploy, "_geomean_ms", lambda by_batch: 1.0)


def test_export_keeps_the_input_normalization(tmp_path, write_recipe, tiny_recipe_dict):
    tiny_recipe_dict["data"]["normalize"] = {"mean": [0.25], "std": [2.0]}
    tiny_recipe_dict["export"]["formats"] = ["dense", "sparse"]
    out = run(write_recipe, tiny_recipe_dict, tmp_path / "run")
    again = export(out, tmp_path / "re")
    props = read_metadata(onnx.load(again / "model.onnx"))
    assert (props.get(INPUT_MEAN), props.get(INPUT_STD)) == ("0.25", "2.0")
    assert_same_files(out, again)


def test_export_of_a_train_compact_run_records_the_selection_sparsity(
    tmp_path, write_recipe, tiny_recipe_dict
):
    out = run(write_recipe, channel_recipe(tiny_recipe_dict), tmp_path / "run")
    again = export(out, tmp_path / "re")
    selection = json.loads((out / "report.json").read_text())["train_compact"]["selection_sparsity"]
    props = read_metadata(onnx.load(again / "model.onnx"))
    assert (
        float(props["paiexport.reached_sparsity"]) == pytest.approx(selection, abs=1e-6) and selection > 0.4
    )
    assert_same_files(out, again)


def test_export_calibrates_int8_with_the_runs_threads(tmp_path, write_recipe, tiny_recipe_dict, monkeypatch):
    threads = torch.get_num_threads() + 1  # not what this process runs with
    seen: list[tuple[int, int]] = []
    real = paiexport.export.build.to_int8

    def spy(*args, **kwargs):
        seen.append((args[3], torch.get_num_threads()))  # the calibration's threads, torch's
        return real(*args, **kwargs)

    monkeypatch.setattr(paiexport.export.build, "to_int8", spy)
    tiny_recipe_dict["export"].update({"formats": ["dense", "int8"], "int8": "dynamic"})
    tiny_recipe_dict["train"]["threads"] = threads
    out = run(write_recipe, tiny_recipe_dict, tmp_path / "run")
    export(out, tmp_path / "re")
    assert seen == [(threads, threads), (threads, threads)]  # the run's, then the export's


def test_export_of_an_lth_level_checkpoint_finds_its_run(tmp_path, write_recipe, tiny_recipe_dict):
    tiny_recipe_dict["method"] = {"name": "lth", "levels": 2}
    tiny_recipe_dict["train"]["epochs"] = 1
    tiny_recipe_dict["export"]["formats"] = ["dense"]
    out = run(write_recipe, tiny_recipe_dict, tmp_path / "run")
    checkpoint = RunPaths(out).phase(level_phase(2)).best
    assert checkpoint == out / "checkpoints" / "level2" / "best.pt" and checkpoint.is_file()
    again = export(checkpoint, tmp_path / "re")
    # The last level's best checkpoint is what the run exported (train.checkpoint: best).
    assert_same_files(out, again)


@pytest.mark.parametrize(
    ("name", "sets"),
    [
        ("snip90", ["train.epochs=1"]),
        ("snip_channel90", ["train.epochs=1", "train.compact=true"]),
    ],
)
def test_export_of_a_bundled_recipe_gives_the_run_files(tmp_path, steady_latency, name, sets):
    """Every format, `auto` included: `export` writes what `run` wrote (bench settings cut down,
    they choose no file here)."""
    bench = ["bench.batch_sizes=[1]", "bench.warmup=0", "bench.iterations=1"]
    out = tmp_path / "run"
    result = invoke("run", name, "--out", out, *[i for s in [*sets, *bench] for i in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert (out / "model.deploy.onnx").is_file()
    assert_same_files(out, export(out, tmp_path / "re"))


def test_export_of_an_edge_popup_run_keeps_the_runs_initializer_order(
    tmp_path, write_recipe, tiny_recipe_dict
):
    """Edge-popup trains scores through a parametrization; removing it registers each weight
    again, after its bias (a conv's bias slot too, which the compact graph fills): the run's
    graphs list `fc1.bias` and `conv2.bias` first, and so must the export's."""
    tiny_recipe_dict["model"] = {"name": "cnn1d", "args": {"channels": [8, 8, 8], "hidden": 16}}
    tiny_recipe_dict["method"] = {"name": "edge_popup"}
    tiny_recipe_dict["sparsity"] = {
        "target": 0.75,
        "distribution": "uniform",
    }  # dead channels: the compact graph gets conv biases
    tiny_recipe_dict["train"]["epochs"] = 2
    tiny_recipe_dict["export"]["formats"] = ["dense", "compact", "sparse"]
    out = run(write_recipe, tiny_recipe_dict, tmp_path / "run")
    assert_same_files(out, export(out, tmp_path / "re"))


def test_export_refuses_a_runtime_not_installed_before_any_work(
    tmp_path, write_recipe, tiny_recipe_dict, monkeypatch
):
    import sys

    import yaml

    import paiexport.runs.export as runs_export

    def never(*args, **kwargs):
        raise AssertionError("restored the model")

    tiny_recipe_dict["export"]["formats"] = ["dense"]
    source = run(write_recipe, tiny_recipe_dict, tmp_path / "run", "train.epochs=1")
    recipe = yaml.safe_load((source / "recipe.yaml").read_text())
    recipe["bench"]["runtimes"] = ["onnxruntime", "openvino"]
    (source / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.setitem(sys.modules, "openvino", None)  # openvino absent
    monkeypatch.setattr(runs_export, "restore_model", never)
    result = invoke("export", source, "--out", tmp_path / "exported")
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "error: bench.runtimes openvino: not installed; pip install 'paiexport[openvino]'"
    )
    assert not (tmp_path / "exported").exists()


def test_sparsity_rules_are_code_that_export_runs_and_transformers_is_not():
    from paiexport.runs.export import factory_modules

    spec = "transformers:AutoModelForSequenceClassification"  # a library, like torchvision:
    assert factory_modules(spec, "synthetic") == []
    assert factory_modules(spec, "synthetic", ["myrules:register", "pkg.more:add"]) == ["myrules", "pkg.more"]


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe", b"relative/path", b"/no/such/folder", b"/tmp\x00x", b"a" * 100_000],
    ids=["not utf-8", "relative", "missing", "nul", "huge"],
)
def test_a_recorded_recipe_folder_that_is_no_folder_falls_back_to_the_run_folder(tmp_path, content):
    from paiexport.runs.export import recorded_folder

    paths = RunPaths(tmp_path)
    paths.recipe_folder.write_bytes(content)
    assert recorded_folder(paths) == tmp_path
    paths.recipe_folder.write_bytes(f"{tmp_path.parent}\n".encode())
    assert recorded_folder(paths) == tmp_path.parent
    paths.recipe_folder.unlink()  # a run written before the file existed
    assert recorded_folder(paths) == tmp_path
