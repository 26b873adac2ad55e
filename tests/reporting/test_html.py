import base64
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.paths import RunPaths
from paiexport.reporting.html import FIG_PIXELS, write_html_report
from paiexport.reporting.schema import RunReport

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("training", "sparsity", "latency", "size")


def png_size(blob: bytes) -> tuple[int, int]:
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", blob[16:24])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import yaml
    from tiny import TINY_RECIPE

    tmp = tmp_path_factory.mktemp("html")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    out = tmp / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_run_writes_report_html_with_embedded_images(run_dir):
    page = (run_dir / "report.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == len(FIGURES)
    for name, encoded in zip(FIGURES, images, strict=True):
        # The page embeds exactly the PNG saved next to it: self-contained, same pixels.
        assert base64.b64decode(encoded) == (run_dir / "plots" / f"{name}.png").read_bytes()
    assert "src='http" not in page and "<link" not in page  # nothing to fetch
    report = json.loads((run_dir / "report.json").read_text())
    assert f"{report['accuracy']['torch']:.2%}" in page
    assert "model.sparse.onnx" in page and "sparse_threshold" in page  # table and recipe


def test_pngs_are_images_of_the_expected_size(run_dir):
    for name in FIGURES:
        blob = (run_dir / "plots" / f"{name}.png").read_bytes()
        assert len(blob) > 5000, name  # a drawn figure, not an empty canvas
        assert png_size(blob) == FIG_PIXELS


def test_any_set_of_variants(run_dir, tmp_path):
    """Variants added later (compact, int8, ...) show up without changes here."""
    report = json.loads((run_dir / "report.json").read_text())
    for key in ("latency_ms", "speedup_vs_dense", "size_bytes", "size_ratio_vs_dense"):
        report[key]["int8"] = report[key]["dense"]
    report["accuracy"]["onnx"]["int8"] = 0.5
    report["metrics"]["onnx"]["int8"] = {"accuracy": 0.5}
    paths = RunPaths(tmp_path)
    shutil.copy(run_dir / "metrics.jsonl", paths.metrics)
    page = write_html_report(paths, RunReport.from_dict(report)).read_text()
    assert "<td>int8</td>" in page and "50.00%" in page
    assert png_size(paths.plot("latency").read_bytes()) == FIG_PIXELS


def test_check_passes_and_fails_on_a_real_run(run_dir):
    ok = runner.invoke(app, ["check", str(run_dir), "--min-sparsity", "0.79", "--max-accuracy-drop", "0.01"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["check", str(run_dir), "--max-size-mb", "dense=0.000001"])
    assert bad.exit_code == 1 and "FAIL  max_size_mb[dense]" in bad.output


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no chromium on PATH",
)
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "shot.png"
    script = str(ROOT / "scripts" / "screenshot_report.py")
    size = ["--width", "1000", "--height", "2000"]
    subprocess.run([sys.executable, script, str(run_dir), "--out", str(shot), *size], check=True, timeout=180)
    blob = shot.read_bytes()
    assert png_size(blob) == (1000, 2000) and len(blob) > 50_000  # text and figures, not a blank page


def test_only_epoch_rows_are_plotted_as_epochs(tmp_path):
    from paiexport.training.metrics_log import read_epoch_records

    path = tmp_path / "metrics.jsonl"

    def epoch(n: int, loss: float, acc: float) -> str:
        fields = {"epoch": n, "step": 5 * n, "train_loss": loss, "train_acc": acc, "val_loss": loss}
        return json.dumps({**fields, "val_acc": acc, "lr": 0.1, "seconds": 0.5}) + "\n"

    path.write_text(
        epoch(1, 1.0, 0.5)
        + '{"level": 1, "sparsity": 0.5, "test_acc": 0.9}\n'
        + '{"event": "mask_update", "step": 100, "dropped": 3, "regrown": 3}\n'
        + epoch(2, 0.8, 0.6)
    )
    assert [row.epoch for row in read_epoch_records(path)] == [1, 2]
