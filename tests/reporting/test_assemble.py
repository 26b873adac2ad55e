"""report.json typed end to end (#21): sections read as attributes, per-layer targets from the
method's hook (reporting imports no method module), the run's facts and outcome by keyword."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.methods import make_method
from paiexport.methods.gmp import GMPConfig
from paiexport.methods.gmp_groups import GMPGroup
from paiexport.methods.snip import SnipConfig
from paiexport.reporting.assemble import RunFacts, RunOutcome, planned_layer_sparsity, sparsity_section
from paiexport.reporting.gates import GatesConfig, evaluate_gates
from paiexport.reporting.report import markdown
from paiexport.reporting.schema import RunReport, needed
from paiexport.sparsity.masks import prunable_weights
from paiexport.sparsity.types import LayerTargets, SparsityConfig

REPORTING = Path(__file__).resolve().parents[2] / "paiexport" / "reporting"


class MLP(nn.Module):
    """fc1 1280, fc2 512, out 64 weights: the layer names the groups below address."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(40, 32), nn.Linear(32, 16), nn.Linear(16, 4)


def _model() -> MLP:
    torch.manual_seed(0)
    model = MLP()
    with torch.no_grad():
        model.fc1.weight.view(-1)[:1024] = 0.0  # 80%
        model.fc2.weight.view(-1)[:128] = 0.0  # 25%: a constant group counts what it reached
    return model


# --- per-layer targets: the method's hook, plain data for the report -----------------------


def test_reporting_imports_no_method_module() -> None:
    found = []
    for path in sorted(REPORTING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.name}: {n}" for n in names if n.startswith("paiexport.methods.")]
    assert not found


def test_gmp_groups_set_the_per_layer_targets_of_the_report() -> None:
    groups = [
        GMPGroup(params=["fc1.weight"], final_sparsity=0.8, start_epoch=0, end_epoch=1, update_frequency=1),
        GMPGroup(kind="constant", params=["re:fc2"]),
    ]
    model, sparsity = _model(), SparsityConfig()
    targets = make_method(GMPConfig(groups=groups)).layer_targets(model, sparsity)
    overall = (1280 * 0.8 + 512 * 0.25) / 1856  # out.weight is in no group: dense, target 0
    assert targets is not None and targets.distribution == "groups" and math.isclose(targets.target, overall)
    assert targets.per_layer == {"fc1.weight": 0.8, "fc2.weight": None, "out.weight": 0.0}
    section = sparsity_section(model, sparsity, {}, targets)
    assert section["distribution"] == "groups" and math.isclose(section["target"], overall)
    assert {n: layer["target"] for n, layer in section["per_layer"].items()} == targets.per_layer


@pytest.mark.parametrize("config", [SnipConfig(), GMPConfig()], ids=["snip", "gmp without groups"])
def test_other_methods_leave_the_targets_to_the_recipe(config) -> None:
    model, sparsity = _model(), SparsityConfig(target=0.9, distribution="erk")
    assert make_method(config).layer_targets(model, sparsity) is None
    section = sparsity_section(model, sparsity, {}, None)
    assert section["target"] == 0.9 and section["distribution"] == "erk"
    planned = planned_layer_sparsity(prunable_weights(model), sparsity)
    assert {n: layer["target"] for n, layer in section["per_layer"].items()} == planned


def test_layer_targets_are_plain_data() -> None:
    targets = LayerTargets(0.5, {"fc1.weight": 0.5}, "groups")
    with pytest.raises(AttributeError):
        targets.target = 0.6  # frozen: the report gets a value, not a handle on the method


# --- RunFacts and RunOutcome: keywords only -------------------------------------------------


def test_run_facts_and_outcome_refuse_positional_arguments() -> None:
    sparsity = SparsityConfig()
    with pytest.raises(TypeError):
        RunFacts({}, "hash", "snip", 1, sparsity)
    facts = RunFacts(recipe={}, recipe_hash="hash", method="snip", epochs=1, sparsity=sparsity)
    assert facts.layer_targets is None
    with pytest.raises(TypeError):
        RunOutcome(nn.Linear(1, 1), None, True, 0.5, {}, {}, {})
    outcome = RunOutcome(
        model=nn.Linear(1, 1),
        fit=None,
        trains_weights=True,
        torch_accuracy=0.5,
        files={},
        checks={},
        stats={},
    )
    assert outcome.deploy is None and outcome.example is None


# --- sections a report may lack: typed None / empty, one line at the reader -----------------


@pytest.mark.parametrize(
    ("gates", "report", "message"),
    [
        ({"max_latency_ms": {1: 1.0}}, {"sparsity": {"reached": 0.9}}, "report has no latency_ms"),
        ({"min_speedup": {"sparse": 1.0}}, {}, "report has no speedup_vs_dense"),
        ({"max_size_mb": {"sparse": 1.0}}, {}, "report has no size_bytes"),
        ({"min_sparsity": 0.5}, {}, "report has no sparsity"),
        ({"max_accuracy_drop": 1.0}, {}, "report has no accuracy"),
        ({"min_accuracy": 0.5}, {"accuracy": {"torch": 0.9}}, "report has no accuracy.onnx"),
    ],
)
def test_a_gate_whose_section_is_missing_says_so_in_one_line(gates, report, message) -> None:
    with pytest.raises(UserError) as err:
        evaluate_gates(GatesConfig.model_validate(gates), RunReport.from_dict(report))
    assert str(err.value) == message


def test_check_on_a_report_without_latency_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"recipe": {"name": "r"}, "accuracy": {"torch": 0.9}, "sparsity": {"reached": 0.9}}')
    done = CliRunner().invoke(app, ["check", str(path), "--max-latency-ms", "64=5"])
    assert done.exit_code == 2
    assert (
        done.output.strip().splitlines() == [done.output.strip()]
        and "report has no latency_ms" in done.output
    )


def test_needed_returns_the_section_or_names_it() -> None:
    report = RunReport.from_dict({"sparsity": {"reached": 0.5}})
    assert needed(report.sparsity, "sparsity") is report.sparsity
    for section, name in [(report.training, "training"), (report.latency_ms, "latency_ms")]:
        with pytest.raises(UserError) as err:
            needed(section, name)
        assert str(err.value) == f"report has no {name}"
    assert not hasattr(RunReport, "require")


def test_markdown_of_a_report_without_training_names_it() -> None:
    report = RunReport.from_dict(
        {"recipe": {"name": "r", "sparsity": {}}, "accuracy": {"torch": 0.9}, "sparsity": {"reached": 0.5}}
    )
    with pytest.raises(UserError) as err:
        markdown(report)
    assert str(err.value) == "report has no training"
