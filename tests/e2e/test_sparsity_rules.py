"""`sparsity.rules`: a user's graph rule for their own op, from the recipe's folder, used by the run
that names it (and its export needs --trust-code, as factory code does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from paiexport.cli import app

ROOT = Path(__file__).resolve().parents[2]

NET = """
import math
import torch
from torch import nn

class Expit(nn.Module):
    # torch.special.expit is no op the built-in rules know: the channels around it stay dense
    def forward(self, x):
        return torch.special.expit(x)

def build(num_classes, input_shape):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), 32), Expit(), nn.Linear(32, num_classes)
    )
"""

RULES = """
from expit_net import Expit
from paiexport.sparsity.dep_rules import ELEMENTWISE

def register(registry):
    registry.module(Expit, ELEMENTWISE)
"""


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_user_rule_makes_its_op_prunable_only_in_the_run_that_names_it(tmp_path, tiny_recipe_dict):
    (tmp_path / "expit_net.py").write_text(NET)
    (tmp_path / "expit_rules.py").write_text(RULES)
    raw = tiny_recipe_dict
    raw["model"] = {"name": "expit_net:build"}
    raw["sparsity"] = {"target": 0.3, "distribution": "uniform", "structure": "channel"}
    raw["train"]["epochs"] = 1
    raw["export"]["formats"] = ["dense", "compact"]
    without = tmp_path / "without.yaml"
    without.write_text(yaml.safe_dump(raw))
    refused = invoke("run", without, "--out", tmp_path / "refused")
    assert refused.exit_code == 2, refused.output
    assert "sparsity.target: 0.3 is too high for channel structure" in refused.output
    assert not (tmp_path / "refused").exists()

    raw["sparsity"]["rules"] = ["expit_rules:register"]
    (tmp_path / "with.yaml").write_text(yaml.safe_dump(raw))
    done = invoke("run", tmp_path / "with.yaml", "--out", tmp_path / "run")
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["sparsity"]["reached"] > 0.2
    assert report["validation"]["compact"]["passed"]

    export = invoke("export", tmp_path / "run", "--out", tmp_path / "re")
    assert export.exit_code == 2 and "expit_rules" in export.output and "--trust-code" in export.output

    # With --trust-code the export finds the code beside the recipe it was run from (recorded in
    # the run folder), from any working folder, in a fresh process (nothing imported yet).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "paiexport", "export", str(tmp_path / "run"), "--trust-code"]
    command += ["--out", str(tmp_path / "re")]
    trusted = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    compact = "model.compact.onnx"
    assert (tmp_path / "re" / compact).read_bytes() == (tmp_path / "run" / compact).read_bytes()
