import json

import pytest
import torch
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.recipe import bundled_recipes_dir

runner = CliRunner()

REPORT_KEYS = {"recipe", "accuracy", "sparsity", "latency_ms", "size_bytes", "versions", "validation"}


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def run_with(recipe_path, out, *overrides: str):
    """`paiexport run RECIPE --out OUT --set o1 --set o2 ...`."""
    sets = [arg for o in overrides for arg in ("--set", o)]
    return invoke("run", str(recipe_path), "--out", str(out), *sets)


@pytest.fixture
def tiny_run(tmp_path, write_recipe, tiny_recipe_dict):
    recipe = write_recipe(tiny_recipe_dict)
    out = tmp_path / "run"
    result = run_with(recipe, out, "train.epochs=1")
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "report.json").read_text()), result


def test_run_writes_every_output(tiny_run):
    out, _report, result = tiny_run
    for name in (
        "model.onnx",
        "model.sparse.onnx",
        "report.json",
        "report.md",
        "metrics.jsonl",
        "recipe.yaml",
        "masks.pt",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    ):
        assert (out / name).exists(), name
    assert "sparse" in result.output and "dense" in result.output  # the summary table


def test_report_contents(tiny_run):
    out, report, _ = tiny_run
    assert set(report) >= REPORT_KEYS
    assert report["recipe"]["train"]["epochs"] == 1  # --set is recorded
    assert report["training"]["threads"] == 1  # train.threads auto: one thread for a tiny model
    assert {"dense", "sparse", "compact", "int8", "compact.int8", "deploy"} == set(report["accuracy"]["onnx"])
    for variant in ("dense", "sparse", "compact"):
        assert report["accuracy"]["onnx"][variant] == pytest.approx(report["accuracy"]["torch"], abs=1e-3)
        assert report["validation"][variant]["passed"] is True
        assert report["validation"][variant]["max_abs_diff"] < 1e-4
        assert set(report["latency_ms"][variant]) == {"1", "8"}
        assert report["latency_ms"][variant]["8"]["1"] > 0
        assert report["size_bytes"][variant]["gzip"] < report["size_bytes"][variant]["raw"]
    assert report["speedup_vs_dense"]["dense"]["1"]["1"] == pytest.approx(1.0)
    s = report["sparsity"]
    assert s["target"] == 0.8 and abs(s["reached"] - 0.8) < 0.005
    masks = torch.load(out / "masks.pt")
    total = sum(m.numel() for m in masks.values())
    assert s["reached"] == pytest.approx(1 - sum(int(m.sum()) for m in masks.values()) / total)
    for name, layer in s["per_layer"].items():
        assert layer["reached"] == pytest.approx(layer["target"], abs=1e-9), name
        assert layer["onnx"]["dense"] == pytest.approx(layer["reached"])
    assert "onnxruntime" in report["versions"] and "torch" in report["versions"]
    assert any("expands them to dense tensors" in note for note in report["notes"])
    assert "Per-layer sparsity" in (out / "report.md").read_text()


def test_existing_output_needs_force(tiny_run, tmp_path, write_recipe, tiny_recipe_dict):
    out, _report, _ = tiny_run
    recipe = write_recipe(tiny_recipe_dict)
    before = (out / "model.onnx").read_bytes()
    result = invoke("run", str(recipe), "--out", str(out), "--set", "train.epochs=1", "--set", "seed=3")
    assert result.exit_code == 2 and "--force" in result.output
    assert (out / "model.onnx").read_bytes() == before
    result = invoke(
        "run", str(recipe), "--out", str(out), "--set", "train.epochs=1", "--set", "seed=3", "--force"
    )
    assert result.exit_code == 0
    assert json.loads((out / "report.json").read_text())["recipe"]["seed"] == 3


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: x\nmethod: {name: snip}\nsparsity: {target: 1.5}\n", "sparsity.target"),
        ("name: x\nmethod: {name: banana}\n", "method.name"),
        ("name: [x\n", "not valid YAML"),
    ],
)
def test_bad_recipe_is_one_line_exit_2(tmp_path, content, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = invoke("run", str(path), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert needle in result.output and str(path) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_recipe_file(tmp_path):
    result = invoke("run", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "recipe file not found" in result.output


def test_failed_run_leaves_nothing_behind(tmp_path, write_recipe, tiny_recipe_dict, monkeypatch):
    import paiexport.export.build as build

    def explode(*_args, **_kwargs):
        raise RuntimeError("export broke")

    monkeypatch.setattr(build, "to_onnx", explode)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        runner.invoke(
            app, ["run", str(write_recipe(tiny_recipe_dict)), "--out", str(out)], catch_exceptions=False
        )
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "recipe.yaml"]


def test_same_seed_same_bytes(tmp_path, write_recipe, tiny_recipe_dict):
    recipe = str(write_recipe(tiny_recipe_dict))
    for run in ("a", "b"):
        assert invoke("run", recipe, "--out", str(tmp_path / run)).exit_code == 0
    a, b = tmp_path / "a", tmp_path / "b"
    # model.deploy.onnx is excluded: it copies whichever file was fastest, a timing.
    files = sorted(p.name for p in a.glob("model*.onnx") if p.name != "model.deploy.onnx")
    assert len(files) == 5
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = torch.load(a / "masks.pt"), torch.load(b / "masks.pt")
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


def test_bundled_snip90_on_mnist1d_one_epoch(tmp_path):
    """The README's recipe, shortened: real data, real CNN, 90% sparsity; sparse file is smaller."""
    out = tmp_path / "snip90"
    result = invoke(
        "run",
        str(bundled_recipes_dir() / "snip90.yaml"),
        "--out",
        str(out),
        "--set",
        "train.epochs=1",
        "--set",
        "bench.iterations=5",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert abs(report["sparsity"]["reached"] - 0.9) < 0.005
    assert report["size_bytes"]["sparse"]["raw"] < report["size_bytes"]["dense"]["raw"]
    assert report["validation"]["sparse"]["max_abs_diff"] < 1e-4
    assert report["accuracy"]["torch"] > 0.3  # one epoch already beats chance (10%) by far


def test_recipes_lists_bundled():
    result = invoke("recipes")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert any(line.startswith("snip90") and "snip" in line and "90%" in line for line in lines)
    assert any(line.startswith("dense") for line in lines)


def test_help_is_useful():
    assert "Prune at initialization" in invoke("--help").output
    assert "--set" in invoke("run", "--help").output


def test_error_messages_keep_their_brackets(tmp_path, write_recipe, tiny_recipe_dict):
    """rich markup must not eat '[...]' in a message (sweep names runs as 'file [key=value]')."""
    result = invoke(
        "sweep",
        str(write_recipe(tiny_recipe_dict)),
        "--grid",
        "method.name=nope",
        "--out",
        str(tmp_path / "s"),
    )
    assert result.exit_code == 2
    assert "[method.name=nope" in result.output


def test_unquoted_nm_structure_gets_a_hint(write_recipe, tiny_recipe_dict, tmp_path):
    result = run_with(write_recipe(tiny_recipe_dict), tmp_path / "o", "sparsity.structure=2:4")
    assert result.exit_code == 2 and 'quotes, e.g. "2:4"' in result.output


def test_out_never_targets_the_current_folder(tmp_path, write_recipe, tiny_recipe_dict, monkeypatch):
    recipe = write_recipe(tiny_recipe_dict)
    monkeypatch.chdir(tmp_path)
    for out in (".", str(tmp_path), str(tmp_path.parent)):
        result = invoke("run", str(recipe), "--out", out, "--force")
        assert result.exit_code == 2 and "current folder" in result.output
    assert recipe.exists()


def test_formats_must_include_the_dense_baseline(write_recipe, tiny_recipe_dict, tmp_path):
    result = run_with(write_recipe(tiny_recipe_dict), tmp_path / "o", "export.formats=[compact, sparse]")
    assert result.exit_code == 2 and "export.formats: must include dense" in result.output


def test_run_exits_1_when_a_file_fails_validation(tmp_path, write_recipe, tiny_recipe_dict, monkeypatch):
    import paiexport.verify.variants as variants

    real = variants.validate_file

    def sparse_fails(path, variant, *args, **kwargs):
        check = real(path, variant, *args, **kwargs)
        if variant == "sparse":
            check.parity = False
        return check

    monkeypatch.setattr(variants, "validate_file", sparse_fails)
    out = tmp_path / "run"
    result = run_with(write_recipe(tiny_recipe_dict), out, "train.epochs=1")
    assert result.exit_code == 1 and "FAILED: broken: sparse (parity)" in result.output
    assert json.loads((out / "report.json").read_text())["validation"]["sparse"]["passed"] is False


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("sparsity.exclude=[nope.*]", "sparsity.exclude: 'nope.*' matches no prunable weight"),
        ("sparsity.exclude=['*']", "sparsity.exclude: leaves no prunable weight"),
        ("data.val_fraction=0.999999", "leaves no training samples"),
    ],
)
def test_recipe_checked_against_the_model(tmp_path, write_recipe, tiny_recipe_dict, override, needle):
    if override.startswith("data."):
        tiny_recipe_dict["train"]["checkpoint"] = "last"
    result = run_with(write_recipe(tiny_recipe_dict), tmp_path / "o", override)
    assert result.exit_code == 2 and needle in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error(tmp_path, write_recipe, tiny_recipe_dict):
    result = run_with(write_recipe(tiny_recipe_dict), tmp_path / "o", "train.device=cuda")
    assert result.exit_code == 2 and "train.device: cuda requested" in result.output


def test_validate_with_an_unrunnable_reference_is_bad_input(tiny_run, tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out, _, _ = tiny_run
    weight = numpy_helper.from_array(np.ones((7, 4), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 7])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    wrong = tmp_path / "wrong.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(wrong))
    result = invoke("validate", str(out / "model.onnx"), "--data", "synthetic", "--reference", str(wrong))
    assert result.exit_code == 2 and "--reference" in result.output and "Traceback" not in result.output


def test_validate_rebuilds_the_runs_own_test_split(tmp_path, write_recipe, tiny_recipe_dict):
    """The synthetic (and digits) test split depends on the seed, stored in the file."""
    out = tmp_path / "run"
    recipe = write_recipe(tiny_recipe_dict)
    assert run_with(recipe, out, "seed=3", "export.formats=[dense]").exit_code == 0
    torch_acc = json.loads((out / "report.json").read_text())["accuracy"]["torch"]
    result = invoke("validate", str(out / "model.onnx"), "--data", "synthetic")
    assert result.exit_code == 0 and f"{torch_acc:.2%} on the synthetic test split" in result.output
    other = invoke("validate", str(out / "model.onnx"), "--data", "synthetic", "--seed", "0")
    assert "on the synthetic test split" in other.output
