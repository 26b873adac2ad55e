"""Export variants end to end, metadata, `auto` deploy choice, and the export/validate/inspect commands."""

import json
from collections import OrderedDict

import numpy as np
import onnx
import pytest
import torch
import yaml
from onnx import numpy_helper
from tiny import TINY_RECIPE
from torch import nn
from typer.testing import CliRunner

from paiexport.bench.deploy import choose_deploy
from paiexport.bench.latency import LatencyStats
from paiexport.cli import app
from paiexport.export.variants import ExportFormat, variants_for
from paiexport.paths import RUN_MARKER
from paiexport.recipe import load_recipe
from paiexport.variant import Variant
from paiexport.verify.validate import FileValidation, accuracy_validation

runner = CliRunner()
FILES = {
    "dense": "model.onnx",
    "sparse": "model.sparse.onnx",
    "compact": "model.compact.onnx",
    "int8": "model.int8.onnx",
    "compact.int8": "model.compact.int8.onnx",
    "deploy": "model.deploy.onnx",
}


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    """A tiny channel-pruned run with every format (the default)."""
    root = tmp_path_factory.mktemp("deploy")
    raw = json.loads(json.dumps(TINY_RECIPE))
    raw["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    raw["train"]["epochs"] = 1
    raw["export"]["sparse_threshold"] = 0.4
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    out = root / "run"
    result = invoke("run", str(recipe), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "report.json").read_text())


def test_every_format_is_written_validated_and_benchmarked(channel_run):
    out, report = channel_run
    for variant, name in FILES.items():
        assert (out / name).is_file(), name
        assert report["files"][variant] == name
        assert report["validation"][variant]["passed"], variant
        assert report["latency_ms"][variant]["8"]["1"] > 0
    for variant in ("compact", "sparse"):
        assert report["validation"][variant]["max_abs_diff"] < 1e-4
    assert report["compact"]["torch_max_abs_diff"] < 1e-5
    assert report["compact"]["params_after"] < report["compact"]["params_before"]
    chosen = report["deploy"]["variant"]
    assert chosen in report["deploy"]["candidates"] and "sparse" not in report["deploy"]["candidates"]
    assert any("classifier" in note for note in report["notes"])
    assert any(note.startswith("model.sparse.onnx stores weights") for note in report["notes"])
    for name, mask in torch.load(out / "masks.pt").items():  # whole channels, still after training
        rows = mask.reshape(mask.shape[0], -1)
        assert bool((rows.all(dim=1) | ~rows.any(dim=1)).all()), name


def test_nm_run_keeps_exactly_n_per_group_in_the_file(tmp_path, write_recipe, tiny_recipe_dict):
    tiny_recipe_dict["sparsity"]["structure"] = "2:4"
    tiny_recipe_dict["export"]["formats"] = ["dense"]
    out = tmp_path / "run"
    result = invoke("run", str(write_recipe(tiny_recipe_dict)), "--out", str(out), "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity"]["reached"] == pytest.approx(0.5)
    assert any("N:M" in note or "2:4" in note for note in report["notes"])
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out / "model.onnx")).graph.initializer}
    for name in ("fc1.weight", "fc2.weight"):
        groups = (weights[name] != 0).reshape(-1, 4).sum(axis=1)
        assert (groups == 2).all(), name


def test_compact_file_is_smaller_and_drops_pruned_channels(channel_run):
    out, report = channel_run
    compact = onnx.load(str(out / "model.compact.onnx"))
    shapes = {t.name: tuple(t.dims) for t in compact.graph.initializer}
    kept = 32 - round(0.5 * 32)  # uniform channel allocation halves fc1's 32 neurons (with fc2, out fixed)
    assert any(s and s[0] <= kept for n, s in shapes.items() if "fc1" in n and len(s) == 2)
    assert report["size_bytes"]["compact"]["raw"] < report["size_bytes"]["dense"]["raw"]


def test_metadata_round_trip_in_every_file(channel_run):
    out, report = channel_run
    recipe = load_recipe(out / "recipe.yaml")
    for variant, name in FILES.items():
        meta = {p.key: p.value for p in onnx.load(str(out / name)).metadata_props}
        assert meta["paiexport.recipe"] == "tiny"
        assert meta["paiexport.recipe_hash"] == recipe.digest() == report["recipe_hash"]
        assert meta["paiexport.method"] == "snip"
        assert meta["paiexport.dataset"] == "synthetic"  # validate --data refuses another
        assert float(meta["paiexport.target_sparsity"]) == 0.5
        assert float(meta["paiexport.reached_sparsity"]) == pytest.approx(
            report["sparsity"]["reached"], abs=1e-6
        )
        assert float(meta["paiexport.torch_accuracy"]) == report["accuracy"]["torch"]
        assert meta["paiexport.version"] == report["paiexport_version"]
        assert meta["paiexport.variant"] == variant
    sparse = onnx.load(str(out / "model.sparse.onnx"))
    assert len(sparse.graph.sparse_initializer) > 0  # metadata did not undo sparse storage


def test_variants_for_formats():
    assert variants_for([ExportFormat.dense]) == ["dense"]
    assert variants_for([ExportFormat.int8]) == ["int8"]
    assert variants_for(list(ExportFormat)) == [
        "dense",
        "compact",
        "int8",
        "compact.int8",
        "sparse",
        "deploy",
    ]


def _check(variant: str, acc: float) -> FileValidation:
    check = accuracy_validation(variant, True, True, 0.0, True, acc, 0.9, True)
    check.parity_required = not Variant(variant).quantized  # int8 files are lossy: judged by their drop
    return check


def _stats(ms: float) -> dict:
    return {1: {1: LatencyStats(ms, ms, ms, 1.0)}, 64: {1: LatencyStats(4 * ms, 4 * ms, 4 * ms, 1.0)}}


def test_auto_picks_fastest_within_the_accuracy_budget():
    stats = {"dense": _stats(1.0), "sparse": _stats(0.1), "compact": _stats(0.3), "compact.int8": _stats(0.1)}
    accuracies = {"dense": 0.9, "sparse": 0.9, "compact": 0.9, "compact.int8": 0.885}
    checks = {v: _check(v, a) for v, a in accuracies.items()}
    chosen, section = choose_deploy(stats, checks, max_metric_drop=1.0)
    assert chosen == "compact"  # compact.int8 loses 1.5 points; sparse is never a candidate
    assert section["candidates"]["compact"]["geomean_latency_ms"] == pytest.approx(0.6)
    assert not section["candidates"]["compact.int8"]["eligible"]
    chosen, _ = choose_deploy(stats, checks, max_metric_drop=2.0)
    assert chosen == "compact.int8"


def test_auto_never_ships_a_file_that_failed_parity():
    stats = {"dense": _stats(1.0), "compact": _stats(0.2), "int8": _stats(0.5)}
    checks = {v: _check(v, 0.9) for v in stats}
    checks["compact"].parity = False  # fastest and accurate, but its outputs are wrong
    chosen, section = choose_deploy(stats, checks, max_metric_drop=1.0)
    assert chosen == "int8" and not section["candidates"]["compact"]["eligible"]


def test_static_int8_is_calibrated(tmp_path, write_recipe, tiny_recipe_dict):
    tiny_recipe_dict["export"].update(
        {"formats": ["dense", "int8"], "int8": "static", "calibration_samples": 64}
    )
    out = tmp_path / "run"
    result = invoke("run", str(write_recipe(tiny_recipe_dict)), "--out", str(out), "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.int8.onnx", "model.onnx"]
    int8 = onnx.load(str(out / "model.int8.onnx"))
    ops = {n.op_type for n in int8.graph.node}
    assert "QuantizeLinear" in ops and "DynamicQuantizeLinear" not in ops  # activations calibrated ahead
    meta = {p.key: p.value for p in int8.metadata_props}
    assert meta["paiexport.int8"] == "static" and meta["paiexport.int8_format"] == "qdq"
    report = json.loads((out / "report.json").read_text())
    assert report["export"]["int8_used"] == {
        "mode": "static",
        "format": "qdq",
        "reason": "export.int8: static (set in the recipe)",
    }
    assert not any("model.sparse.onnx" in note for note in report["notes"])  # no such file here


def test_auto_int8_is_static_qdq_for_a_conv_net_and_dynamic_for_an_mlp(
    tmp_path, write_recipe, tiny_recipe_dict
):
    """The default `export.int8: auto`, through a run: the report and the files say which."""
    tiny_recipe_dict["export"]["formats"] = ["dense", "int8"]
    mlp = tmp_path / "mlp"
    result = invoke("run", str(write_recipe(tiny_recipe_dict)), "--out", str(mlp), "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    tiny_recipe_dict["model"] = {"name": "cnn1d", "args": {"channels": [8, 8], "hidden": 16}}
    tiny_recipe_dict["export"]["calibration_samples"] = 32
    cnn = tmp_path / "cnn"
    recipe = str(write_recipe(tiny_recipe_dict, "cnn.yaml"))
    result = invoke("run", recipe, "--out", str(cnn), "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    used = json.loads((mlp / "report.json").read_text())["export"]["int8_used"]
    assert used["mode"] == "dynamic" and used["format"] is None and "no Conv" in used["reason"]
    ops = [n.op_type for n in onnx.load(str(mlp / "model.int8.onnx")).graph.node]
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    report = json.loads((cnn / "report.json").read_text())
    used = report["export"]["int8_used"]
    assert (used["mode"], used["format"]) == ("static", "qdq")
    assert used["reason"].startswith("graph has 2 Conv/ConvTranspose nodes: dynamic ConvInteger")
    assert "int8 files: static, qdq; graph has 2 Conv" in (cnn / "report.md").read_text()
    int8 = onnx.load(str(cnn / "model.int8.onnx"))
    ops = [n.op_type for n in int8.graph.node]
    assert "QuantizeLinear" in ops and "Conv" in ops and "ConvInteger" not in ops
    assert {n.domain for n in int8.graph.node} == {""}  # standard ONNX: no com.microsoft.QGemm
    meta = {p.key: p.value for p in int8.metadata_props}
    assert (meta["paiexport.int8"], meta["paiexport.int8_format"]) == ("static", "qdq")
    assert report["validation"]["int8"]["passed"]


def test_export_command_reexports_without_training(channel_run, tmp_path):
    run_dir, _report = channel_run
    out = tmp_path / "again"
    result = invoke("export", str(run_dir), "--formats", "dense,compact", "--opset", "19", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [RUN_MARKER, "model.compact.onnx", "model.onnx"]
    again = onnx.load(str(out / "model.onnx"))
    assert again.opset_import[0].version == 19
    first = {
        t.name: numpy_helper.to_array(t) for t in onnx.load(str(run_dir / "model.onnx")).graph.initializer
    }
    for t in again.graph.initializer:  # same trained weights, masks still applied
        if t.name in first:
            np.testing.assert_array_equal(numpy_helper.to_array(t), first[t.name])
    bad = invoke("export", str(run_dir), "--formats", "dense,fast", "--out", str(tmp_path / "x"))
    assert bad.exit_code == 2 and "export.formats" in bad.output
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def _mnist1d_mlp_file(tmp_path):
    torch.manual_seed(0)
    layers = OrderedDict(flatten=nn.Flatten(), fc=nn.Linear(40, 16), relu=nn.ReLU(), out=nn.Linear(16, 10))
    model = nn.Sequential(layers).eval()
    with torch.no_grad():
        model.fc.weight[:, ::2] = 0
    path = tmp_path / "plain.onnx"
    batch = torch.export.Dim("batch")
    torch.onnx.export(model, (torch.zeros(1, 1, 40),), str(path), dynamo=True, dynamic_shapes=({0: batch},))
    return path


def test_inspect_plain_torch_onnx_export(tmp_path):
    path = _mnist1d_mlp_file(tmp_path)
    result = invoke("inspect", str(path), "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    fc = next(v for k, v in found["initializers"].items() if v["shape"] == [16, 40])
    assert fc["sparsity"] == pytest.approx(0.5) and fc["storage"] == "dense" and fc["bytes"] >= 16 * 40 * 4
    flops = found["flops_per_sample"]
    assert flops["dense"] == 2 * (40 * 16 + 16 * 10)
    assert flops["effective"] == 2 * (20 * 16 + 16 * 10)
    assert found["metadata"] == {}
    assert sum(found["ops"].values()) >= 2
    table = invoke("inspect", str(path))
    assert table.exit_code == 0 and "FLOPs" in table.output
    missing = invoke("inspect", str(tmp_path / "nope.onnx"))
    assert missing.exit_code == 2 and "nope.onnx" in missing.output


def test_validate_fails_with_exit_1_on_perturbed_weights(channel_run, tmp_path):
    out, _ = channel_run
    reference = str(out / "model.onnx")
    ok = invoke("validate", str(out / "model.compact.onnx"), "--data", "synthetic", "--reference", reference)
    assert ok.exit_code == 0, ok.output
    assert "parity" in ok.output
    model = onnx.load(str(out / "model.onnx"))
    for tensor in model.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.ndim == 2:
            tensor.CopyFrom(numpy_helper.from_array(values + 0.5, tensor.name))
            break
    bad = tmp_path / "perturbed.onnx"
    onnx.save_model(model, str(bad))
    result = invoke("validate", str(bad), "--data", "synthetic", "--reference", str(out / "model.onnx"))
    assert result.exit_code == 1
    assert "broken, failed check: parity" in result.output
    wrong = invoke("validate", str(bad), "--data", "cifar")
    assert wrong.exit_code == 2 and "--data" in wrong.output


def test_export_defaults_to_its_own_folder_and_needs_force(channel_run):
    run_dir, _report = channel_run
    assert invoke("export", str(run_dir), "--formats", "dense").exit_code == 0
    assert (run_dir / "export" / "model.onnx").is_file()
    again = invoke("export", str(run_dir), "--formats", "dense")
    assert again.exit_code == 2 and "--force" in again.output
    assert invoke("export", str(run_dir), "--formats", "dense", "--force").exit_code == 0
    into_run = invoke("export", str(run_dir), "--formats", "dense", "--out", str(run_dir), "--force")
    assert into_run.exit_code == 2 and "report.json describes its files" in into_run.output


@pytest.mark.parametrize("method", ["lth", "edge_popup", "magnitude_after_training"])
def test_export_restores_every_method(method, tmp_path, write_recipe, tiny_recipe_dict):
    tiny_recipe_dict["method"] = {"name": method}
    tiny_recipe_dict["export"]["formats"] = ["dense"]
    run_dir = tmp_path / "run"
    recipe = str(write_recipe(tiny_recipe_dict))
    assert invoke("run", recipe, "--out", str(run_dir), "--set", "train.epochs=1").exit_code == 0
    result = invoke("export", str(run_dir), "--formats", "dense")
    assert result.exit_code == 0, result.output
    first = onnx.load(str(run_dir / "model.onnx")).graph.initializer
    again = {
        t.name: numpy_helper.to_array(t)
        for t in onnx.load(str(run_dir / "export/model.onnx")).graph.initializer
    }
    for t in first:
        np.testing.assert_array_equal(numpy_helper.to_array(t), again[t.name])


def test_only_onnxruntime_by_default_adds_no_runtime_figures(channel_run):
    out, report = channel_run
    assert report["runtimes"] is None and report["deploy"]["runtime"] is None  # None: onnxruntime
    assert all(check["runtimes"] is None for check in report["validation"].values())
    assert "## Runtimes" not in (out / "report.md").read_text()


def test_openvino_run_validates_times_and_deploys_in_openvino(tmp_path, write_recipe, tiny_recipe_dict):
    pytest.importorskip("openvino", reason="openvino is an optional extra: pip install 'paiexport[openvino]'")
    tiny_recipe_dict["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    tiny_recipe_dict["export"].update(
        {"formats": ["dense", "compact", "int8", "auto"], "int8": "static", "int8_format": "qoperator"}
    )
    tiny_recipe_dict["export"]["deploy_runtime"] = "openvino"
    tiny_recipe_dict["bench"]["runtimes"] = ["onnxruntime", "openvino"]
    tiny_recipe_dict["validate"] = {"max_accuracy_drop": 100.0}  # int8 would be eligible on accuracy
    out = tmp_path / "run"
    result = invoke("run", str(write_recipe(tiny_recipe_dict)), "--out", str(out), "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    ov = report["runtimes"]["openvino"]
    assert ov["info"]["precision"] == "f32" and set(ov["latency"]) == {"dense", "compact", "deploy"}
    assert "com.microsoft.QGemm" in ov["unreadable"]["int8"]  # QOperator: unreadable, not a crash
    for variant in ("dense", "compact"):
        there = report["validation"][variant]["runtimes"]["openvino"]
        assert there["loads"] and there["parity"] and there["deployable"], variant
        assert ov["speedup_vs_dense_onnxruntime"][variant]["1"]["1"] > 0
    assert not report["validation"]["int8"]["runtimes"]["openvino"]["deployable"]
    deploy = report["deploy"]
    assert deploy["runtime"] == "openvino" and deploy["variant"] in {"dense", "compact"}
    assert set(deploy["candidates"]) == {"dense", "compact"}  # the unreadable file is no candidate
    assert "## Runtimes" in (out / "report.md").read_text()
    assert "<h2>Runtimes</h2>" in (out / "report.html").read_text()
    gate = invoke("check", str(out), "--min-speedup", "compact=0.01", "--runtime", "openvino")
    assert gate.exit_code == 0 and "openvino, batch" in gate.output


def test_auto_in_another_runtime_picks_from_its_timings_never_an_unreadable_file(tmp_path, tiny_recipe_dict):
    from tinyonnx import linear_file

    from paiexport.bench.runtime_checks import RuntimeCheck, RuntimeOutcome
    from paiexport.bench.runtime_latency import RuntimeLatency
    from paiexport.bench.runtimes import RuntimeInfo
    from paiexport.paths import RunPaths
    from paiexport.recipe import validate_recipe
    from paiexport.runs.ship import Checked, deploy_stage
    from paiexport.tasks import make_task

    tiny_recipe_dict["export"]["formats"] = ["dense", "compact", "int8", "auto"]
    tiny_recipe_dict["export"]["deploy_runtime"] = "openvino"
    tiny_recipe_dict["bench"]["runtimes"] = ["onnxruntime", "openvino"]
    recipe = validate_recipe(tiny_recipe_dict, "tiny.yaml")  # openvino need not be installed: no timing here
    w = np.eye(40, 4, dtype=np.float32)
    files = {v: linear_file(tmp_path / f"{v}.onnx", w) for v in ("dense", "compact", "int8")}
    checks = {v: _check(v, 0.9) for v in files}
    onnxruntime = {"dense": _stats(1.0), "compact": _stats(0.5), "int8": _stats(0.1)}  # int8 fastest there
    latency = RuntimeLatency(
        stats={"onnxruntime": onnxruntime, "openvino": {"dense": _stats(0.8), "compact": _stats(0.6)}},
        unreadable={"openvino": {"int8": "RuntimeError: no QGemm"}},
    )
    why = {"int8": "RuntimeError: no QGemm"}
    there = {v: RuntimeCheck("openvino", c, why.get(v)) for v, c in checks.items()}
    info = {"openvino": RuntimeInfo("openvino", "2026.4.1", "CPU", "bf16", "f32", True)}
    checked = Checked(files, onnxruntime, checks, RuntimeOutcome(latency, {"openvino": there}, info))
    done, section = deploy_stage(recipe, checked, make_task(), RunPaths(tmp_path))
    assert section["variant"] == "compact" and section["runtime"] == "openvino"
    assert set(section["candidates"]) == {"dense", "compact"} and "in openvino" in section["criterion"]
    assert done.files["deploy"] == tmp_path / "model.deploy.onnx" and done.files["deploy"].is_file()
    assert done.stats["deploy"] is onnxruntime["compact"]  # onnxruntime's figures of the chosen file
    assert done.runtimes.latency.stats["openvino"]["deploy"] is latency.stats["openvino"]["compact"]
    assert done.checks["deploy"].variant == "deploy" and done.runtimes.checks["openvino"]["deploy"].deployable
