"""Hostile input to the file commands: `export` (factory code, checkpoints), `validate --recipe`,
`recipes convert -o`, `sweep --collect`. Each is exit 2 with one line naming the file or module,
and nothing is imported, overwritten or half written."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import onnx
import pytest
import torch
import yaml
from tiny import TINY_RECIPE
from typer.testing import CliRunner

from paiexport.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished bundled-MLP run (1 epoch, dense file only)."""
    root = tmp_path_factory.mktemp("hostile")
    raw = json.loads(json.dumps(TINY_RECIPE))
    raw["train"]["epochs"] = 1
    raw["export"]["formats"] = ["dense"]
    raw["bench"] = {"batch_sizes": [1], "threads": [1], "warmup": 0, "iterations": 2}
    (root / "recipe.yaml").write_text(yaml.safe_dump(raw))
    result = invoke("run", root / "recipe.yaml", "--out", root / "run")
    assert result.exit_code == 0, result.output
    return root / "run"


def received(tmp_path: Path, run: Path, *, model: str | None = None, data: str | None = None) -> Path:
    """A copy of `run`'s recipe.yaml and model.pt, its model/data names replaced."""
    folder = tmp_path / "received"
    folder.mkdir()
    raw = yaml.safe_load((run / "recipe.yaml").read_text())
    if model:
        raw["model"] = {"name": model, "args": {}}
    if data:
        raw["data"]["name"] = data
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(run / "model.pt", folder / "model.pt")
    return folder


def hostile_module(folder: Path, marker: Path) -> str:
    """A module in `folder` (unique name: nothing cached) that leaves `marker` when imported.

    The tests run from `folder`: the current folder is where factories are looked up."""
    name = f"hostile_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(**kw):\n    pass\n")
    return name


def test_export_refuses_to_run_os_system_named_by_the_recipe(tmp_path, tiny_run):
    marker = tmp_path / "MARKER"
    folder = received(tmp_path, tiny_run)
    raw = yaml.safe_load((folder / "recipe.yaml").read_text())
    raw["model"] = {"name": "os:system", "args": {"command": f"touch {marker}"}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw))
    result = invoke("export", folder, "--out", tmp_path / "out")
    assert result.exit_code == 2
    line = one_line(result)
    assert "would import and run os " in line and "--trust-code" in line
    assert not marker.exists()


@pytest.mark.parametrize("which", ["model", "data", "both"])
def test_export_refuses_factory_code_without_trust_code(tmp_path, tiny_run, which, monkeypatch):
    marker = tmp_path / "MARKER"
    folder = received(tmp_path, tiny_run)
    monkeypatch.chdir(folder)
    names = {w: hostile_module(folder, marker) for w in ("model", "data")}
    spec = {"model": f"{names['model']}:build", "data": f"{names['data']}:build"}
    raw = yaml.safe_load((folder / "recipe.yaml").read_text())
    if which in ("model", "both"):
        raw["model"] = {"name": spec["model"], "args": {}}
    if which in ("data", "both"):
        raw["data"]["name"] = spec["data"]
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw))
    result = invoke("export", folder, "--out", tmp_path / "out")
    assert result.exit_code == 2
    line = one_line(result)
    assert "--trust-code" in line and "recipe.yaml" in line
    for w in ("model", "data"):
        assert (names[w] in line) == (which in (w, "both")), line
    assert not marker.exists()  # nothing was imported
    assert not (tmp_path / "out").exists()


def test_export_with_trust_code_runs_the_factory_and_bundled_needs_no_flag(tmp_path, tiny_run, monkeypatch):
    folder = received(tmp_path, tiny_run, model="mlp_factory:build")
    monkeypatch.chdir(folder)
    (folder / "mlp_factory.py").write_text(
        "from paiexport.models import MLPArgs, build_mlp\n\n"
        "def build(input_shape, num_classes):\n"
        "    return build_mlp(MLPArgs(hidden=[32, 16]), input_shape, num_classes)\n"
    )
    refused = invoke("export", folder, "--out", tmp_path / "refused")
    assert refused.exit_code == 2 and "mlp_factory" in one_line(refused)
    done = invoke("export", folder, "--trust-code", "--out", tmp_path / "trusted")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "trusted" / "model.onnx").is_file()
    bundled = invoke("export", tiny_run, "--out", tmp_path / "bundled")  # no flag for bundled names
    assert bundled.exit_code == 0, bundled.output


def test_validate_recipe_refuses_factory_data_without_trust_code(tmp_path, tiny_run, monkeypatch):
    marker = tmp_path / "MARKER"
    folder = received(tmp_path, tiny_run)
    monkeypatch.chdir(folder)
    name = hostile_module(folder, marker)
    raw = yaml.safe_load((folder / "recipe.yaml").read_text())
    raw["data"]["name"] = f"{name}:build"
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw))
    model = onnx.load(str(tiny_run / "model.onnx"))  # the file of that run: it records that dataset
    for prop in model.metadata_props:
        if prop.key == "paiexport.dataset":
            prop.value = f"{name}:build"
    onnx.save(model, str(folder / "model.onnx"))
    result = invoke("validate", folder / "model.onnx", "--recipe", folder / "recipe.yaml")
    assert result.exit_code == 2
    line = one_line(result)
    assert name in line and "--trust-code" in line
    assert not marker.exists()


def _checkpoints(run: Path) -> dict[str, object]:
    state = torch.load(run / "model.pt")
    masks = torch.load(run / "masks.pt")
    mask_of = {f"{k.removesuffix('.weight')}.weight_mask": v.float() for k, v in masks.items()}
    return {
        "masks.pt": None,  # the run's own masks file
        "all_booleans.pt": {k: torch.ones_like(v, dtype=torch.bool) for k, v in state.items()},
        "a_list.pt": [1, 2, 3],
        "not_tensors.pt": {k: 1.0 for k in state},
        "wrong_shape.pt": {**state, "fc1.weight": torch.zeros(3, 3)},
        "missing_key.pt": {k: v for k, v in state.items() if k != "out.bias"},
        "mask_wrong_shape.pt": {**state, **mask_of, "fc1.weight_mask": torch.ones(2, 2)},
        "mask_unknown.pt": {**state, **mask_of, "nope.weight_mask": torch.ones(2, 2)},
    }


EXPECTED = {
    "masks.pt": "holds masks",
    "all_booleans.pt": "holds masks",
    "a_list.pt": "not a model state dict",
    "not_tensors.pt": "not a model state dict",
    "wrong_shape.pt": "fc1.weight has shape (3, 3)",
    "missing_key.pt": "no out.bias",
    "mask_wrong_shape.pt": "mask for fc1.weight has shape (2, 2)",
    "mask_unknown.pt": "no prunable weight named 'nope.weight'",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_export_of_a_file_that_is_not_the_runs_state_dict_exits_2(tmp_path, tiny_run, name):
    obj = _checkpoints(tiny_run)[name]
    if obj is None:
        path = tiny_run / name
    else:
        folder = received(tmp_path, tiny_run)
        path = folder / name
        torch.save(obj, path)
    result = invoke("export", path, "--out", tmp_path / "out")
    assert result.exit_code == 2
    line = one_line(result)
    assert name in line and EXPECTED[name] in line, line
    assert not (tmp_path / "out").exists()


# --- recipes convert -o ------------------------------------------------------------------------

SPARSEML = "modifiers:\n  - !EpochRangeModifier {start_epoch: 0.0, end_epoch: 3.0}\n"


def test_convert_refuses_to_overwrite_its_input(tmp_path):
    source = tmp_path / "r.yaml"
    source.write_text(SPARSEML)
    (tmp_path / "link.yaml").symlink_to(source)
    (tmp_path / "hard.yaml").hardlink_to(source)
    for target in (source, tmp_path / "." / "r.yaml", tmp_path / "link.yaml", tmp_path / "hard.yaml"):
        result = invoke("recipes", "convert", source, "-o", target)
        assert result.exit_code == 2
        assert "is the SparseML recipe being converted" in one_line(result)
        assert source.read_text() == SPARSEML


def test_convert_output_to_a_folder_or_a_missing_folder_exits_2(tmp_path):
    source = tmp_path / "r.yaml"
    source.write_text(SPARSEML)
    folder = invoke("recipes", "convert", source, "-o", tmp_path)
    assert folder.exit_code == 2 and "is a folder" in one_line(folder)
    missing = invoke("recipes", "convert", source, "-o", tmp_path / "no" / "such" / "n.yaml")
    assert missing.exit_code == 2 and "does not exist" in one_line(missing)
    assert not (tmp_path / "no").exists()


def test_convert_writes_atomically(tmp_path, monkeypatch):
    source, target = tmp_path / "r.yaml", tmp_path / "native.yaml"
    source.write_text(SPARSEML)
    target.write_text("old: content\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    result = invoke("recipes", "convert", source, "-o", target)
    assert result.exit_code == 2 and "cannot write" in one_line(result)
    assert target.read_text() == "old: content\n"  # untouched, not half written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["native.yaml", "r.yaml"]  # no temporary left
    monkeypatch.undo()
    done = invoke("recipes", "convert", source, "-o", target)
    assert done.exit_code == 0 and "train:" in target.read_text()


# --- sweep --collect ---------------------------------------------------------------------------


def sweep_folder(tmp_path: Path, plan: object, recipe_text: str | None = None) -> Path:
    folder = tmp_path / "sweep"
    (folder / "r1").mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(plan))
    (folder / "r1" / "report.json").write_text("{}")
    if recipe_text is not None:
        (folder / "r1" / "recipe.yaml").write_text(recipe_text)
    return folder


GOOD_PLAN = {"title": "t", "extra_keys": [], "runs": [{"name": "r1", "assignments": {"seed": 0}}]}


@pytest.mark.parametrize(
    ("recipe_text", "expected"),
    [(None, "recipe file not found"), ("a: [1,\n", "r1/recipe.yaml"), ("- a list\n", "r1/recipe.yaml")],
    ids=["missing", "unparsable", "not_a_mapping"],
)
def test_collect_with_a_bad_recipe_yaml_exits_2_naming_it(tmp_path, recipe_text, expected):
    result = invoke("sweep", "--collect", sweep_folder(tmp_path, GOOD_PLAN, recipe_text))
    assert result.exit_code == 2
    line = result.output.strip().splitlines()[0]
    assert expected in line and "recipe.yaml" in line


@pytest.mark.parametrize(
    "plan",
    [
        {"title": "t", "extra_keys": [], "runs": 5},
        {"title": "t", "extra_keys": [], "runs": [1]},
        {"title": "t", "extra_keys": [], "runs": [{"name": 3, "assignments": {}}]},
        {"title": "t", "extra_keys": [], "runs": [{"name": "r1", "assignments": []}]},
        {"title": "t", "extra_keys": [], "runs": [{"name": "../r1", "assignments": {}}]},
        {"title": 1, "extra_keys": [], "runs": []},
        {"title": "t", "extra_keys": 5, "runs": []},
    ],
    ids=["runs_int", "entry_int", "name_int", "assignments_list", "name_escapes", "title", "keys"],
)
def test_collect_with_a_plan_of_the_wrong_types_exits_2_naming_it(tmp_path, plan):
    result = invoke("sweep", "--collect", sweep_folder(tmp_path, plan))
    assert result.exit_code == 2
    assert "sweep.json: not a sweep plan" in one_line(result)
