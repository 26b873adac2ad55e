"""What `paiexport` prints: help, version, the run's display and last line, inspect; and the
method details of every method in report.md and report.html."""

import io
import json

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from paiexport import __version__
from paiexport.cli import app
from paiexport.reporting.html import render_html
from paiexport.reporting.report import markdown
from paiexport.reporting.schema import RunReport

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny run (non-TTY, as under CliRunner): its folder, report and terminal output."""
    from tiny import TINY_RECIPE

    tmp = tmp_path_factory.mktemp("terminal")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    out = tmp / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "report.json").read_text()), result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"paiexport {__version__}"


@pytest.mark.parametrize("command", ["run", "export"])
def test_force_shows_as_a_flag(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    line = next(line for line in result.output.splitlines() if "--force" in line)
    assert "<bool>" not in line and "Replace an existing" in line


def test_not_a_terminal_prints_one_line_per_epoch(tiny):
    out, _, output = tiny
    lines = [line for line in output.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    for line, record in zip(lines, [json.loads(r) for r in (out / "metrics.jsonl").open()], strict=True):
        assert f"loss {record['train_loss']:.4f}" in line and f"val acc {record['val_acc']:.2%}" in line
        assert line.endswith(" s")


def test_last_line_lists_report_html_and_deploy_names_its_source(tiny):
    out, report, output = tiny
    lines = output.strip().splitlines()
    # The last line is the verdict (#16) and points at report.html; the folder line lists every file.
    assert lines[-1].startswith("OK: ") and lines[-1].endswith(f"(see {out / 'report.html'})")
    folder = next(line for line in lines if line.startswith("run folder:"))
    assert "report.html" in folder and "model.deploy.onnx" in folder
    label = f"deploy (= {report['deploy']['variant']})"
    assert label in output
    assert f"| {label} |" in (out / "report.md").read_text()
    assert f"<td>{label}</td>" in (out / "report.html").read_text()


def test_html_shows_environment_and_parity_per_file(tiny):
    out, report, _ = tiny
    page = (out / "report.html").read_text()
    machine, versions = report["machine"], report["versions"]
    cores = f"{machine['logical_cpus']} logical cores"
    runtimes = [f"onnxruntime {versions['onnxruntime']}", f"torch {versions['torch']}"]
    for text in (machine["cpu"], machine["date"], cores, *runtimes, "onnxruntime threads 1"):
        assert text in page, text
    assert "max abs diff vs PyTorch" in page
    for variant, check in report["validation"].items():
        assert f"<td>{report['files'][variant]}</td>" in page
        assert f"<td>{check['max_abs_diff']:.3g}</td>" in page


def test_inspect_lists_inputs_outputs_and_opset_domains(tiny):
    out, _, _ = tiny
    result = runner.invoke(app, ["inspect", str(out / "model.onnx")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "opset ai.onnx 18" in result.output
    # The tiny MLP on synthetic data: signals of length 40, 4 classes, dynamic batch.
    assert "inputs: input float32[batch, 1, 40]\n" in result.output
    assert "outputs: logits float32[batch, 4]\n" in result.output
    found = json.loads(runner.invoke(app, ["inspect", str(out / "model.onnx"), "--json"]).output)
    assert [i["dtype"] for i in found["inputs"]] == ["float32"] and found["opset"]["ai.onnx"] == 18


METHOD_DETAILS = {
    "gmp": ("mask_updates", [{"step": 0, "sparsity": 0.0}, {"step": 10, "sparsity": 0.8}], "| 10 | 0.8 |"),
    "rigl": (
        "mask_updates",
        {"count": 3, "per_layer": {"fc1.weight": {"dropped": 7, "regrown": 5}}},
        "| fc1.weight | 7 | 5 |",
    ),
    "lth": ("levels", [{"level": 1, "sparsity": 0.5, "test_acc": 0.875}], "| 1 | 0.5 | 0.875 |"),
    "magnitude_after_training": ("phases", [{"phase": "finetune", "epochs": 2}], "| finetune | 2 |"),
    "edge_popup": (
        "sparse_selection",
        {"weight_init": "kaiming", "keep_per_layer": {"fc1.weight": 9}},
        "keep_per_layer: fc1.weight=9",
    ),
}


@pytest.mark.parametrize("method", list(METHOD_DETAILS))
def test_every_methods_details_render(tiny, method):
    _, report, _ = tiny
    key, value, expected = METHOD_DETAILS[method]
    report = RunReport.from_dict({**report, "method": method, key: value})
    md = markdown(report)
    assert expected in md
    page = render_html(report, {})
    assert f"<h2>{method}: " in page
    cells = [c.strip() for c in expected.strip("|").split("|")] if "|" in expected else []
    assert all(f"<td>{c}</td>" in page for c in cells) and (cells or expected in page)


def test_stage_and_epoch_bar_share_one_live_display():
    from paiexport.display import Display, current

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    display = Display(console)
    with display.stage("training"):
        with current().training(epochs=2, total_steps=4) as bar:
            assert bar is display and len(display.progress.tasks) == 2  # stage line + epoch bar
            bar.step()
            assert display.progress.tasks[1].completed == 1
        assert len(display.progress.tasks) == 1
    assert current() is not display  # outside the stage: a silent display
