"""pipeline.py: one tiny recipe end to end into a run folder that appears only when finished.

One run (snip, ERK 80%, one epoch, the dense file only) serves every test here.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass

import pytest
import torch
import yaml
from rich.console import Console
from tiny import TINY_RECIPE

import paiexport.runs.pipeline as pipeline
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe, validate_recipe
from paiexport.reporting.schema import RunReport
from paiexport.sparsity.counts import removed
from paiexport.verify.validate import onnx_weight_sparsity


@dataclass
class Ran:
    recipe: Recipe
    paths: RunPaths
    report: RunReport
    seen_at_ship: dict


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Ran:
    raw = copy.deepcopy(TINY_RECIPE)
    raw["train"]["epochs"] = 1
    raw["export"]["formats"] = ["dense"]
    raw["bench"] = {"batch_sizes": [1], "threads": [1], "warmup": 0, "iterations": 2}
    raw["gates"] = {"min_sparsity": 0.75}
    recipe = validate_recipe(raw, "tiny.yaml")
    out = tmp_path_factory.mktemp("pipeline") / "run"
    seen: dict = {}
    real = pipeline.ship

    def ship(recipe, model, data, paths, *args):
        seen.update(out_exists=out.exists(), staged=paths.root, masks=paths.masks.is_file())
        return real(recipe, model, data, paths, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "ship", ship)
        report = pipeline.run_recipe(recipe, out, console=Console(file=io.StringIO()))
    return Ran(recipe, RunPaths(out), report, seen)


def test_the_run_folder_appears_only_once_the_run_is_finished(ran):
    assert ran.seen_at_ship["out_exists"] is False and ran.seen_at_ship["masks"] is True
    assert ran.seen_at_ship["staged"] != ran.paths.root and not ran.seen_at_ship["staged"].exists()
    assert [p.name for p in ran.paths.root.parent.iterdir()] == ["run"]  # no staging folder left


def test_every_stage_wrote_its_outputs(ran):
    paths = ran.paths
    for file in (paths.recipe, paths.masks, paths.model_state, paths.metrics, paths.best_checkpoint):
        assert file.is_file(), file
    for file in (paths.root / "model.onnx", paths.report_json, paths.report_md, paths.report_html):
        assert file.is_file(), file
    assert yaml.safe_load(paths.recipe.read_text()) == ran.recipe.to_dict()
    assert ran.report.files == {"dense": "model.onnx"}


def test_the_masks_and_the_file_have_exactly_the_target_sparsity(ran):
    masks = torch.load(ran.paths.masks, weights_only=True)
    total = sum(m.numel() for m in masks.values())
    zeros = {n: int((~m).sum()) for n, m in masks.items()}
    assert total == 1856 and sum(zeros.values()) == removed(total, 0.8) == 1485
    assert ran.report.sparsity.reached == pytest.approx(1485 / 1856)
    stored = onnx_weight_sparsity(ran.paths.root / "model.onnx", list(masks))
    assert stored == {n: pytest.approx(zeros[n] / masks[n].numel()) for n in masks}


def test_report_json_holds_the_returned_report_with_gates_and_verdict(ran):
    report = ran.report
    assert RunReport.read(ran.paths.report_json).model_dump() == report.model_dump()
    assert report.ok and (report.verdict.exit_code, report.verdict.line) == (
        0,
        "OK: no file broken; 1 gate(s) passed",
    )
    assert report.gates.passed and [r.gate for r in report.gates.results] == ["min_sparsity"]
    assert report.recipe_hash == ran.recipe.digest() and report.world_size == 1
    assert {"fit", "total"} <= set(report.timings_s) and report.timings_s["total"] >= report.timings_s["fit"]
    assert report.validation["dense"].passed and report.validation["dense"].sparsity_mismatch == []


def test_trackers_get_the_reports_figures(ran):
    figures = pipeline.tracked_figures(ran.report)
    assert figures["sparsity"] == ran.report.sparsity.reached
    assert figures["accuracy"]["torch"] == ran.report.accuracy.torch
    assert figures["size_bytes"]["dense"]["raw"] == (ran.paths.root / "model.onnx").stat().st_size


def test_a_runtime_not_installed_is_refused_before_training(tmp_path, monkeypatch):
    import sys

    from paiexport.errors import UserError

    def never(*args, **kwargs):
        raise AssertionError("trained")

    raw = copy.deepcopy(TINY_RECIPE)
    raw["bench"] = {**raw["bench"], "runtimes": ["onnxruntime", "openvino"]}
    recipe = validate_recipe(raw, "tiny.yaml")
    monkeypatch.setitem(sys.modules, "openvino", None)  # openvino absent
    monkeypatch.setattr(pipeline, "select_and_train", never)
    out = tmp_path / "run"
    with pytest.raises(UserError) as caught:
        pipeline.run_recipe(recipe, out, console=Console(file=io.StringIO()))
    assert str(caught.value) == "bench.runtimes openvino: not installed; pip install 'paiexport[openvino]'"
    assert not out.exists() and list(tmp_path.iterdir()) == []
