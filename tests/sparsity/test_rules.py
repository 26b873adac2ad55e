"""The registry a graph is built with: the built-ins, a run's `sparsity.rules` loaded from the
recipe's folder, in effect only inside `using_rules`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.sparsity.depgraph import build_graph
from paiexport.sparsity.rules import active_rules, builtin_rules, load_rules, using_rules

RULES = """
import torch
from paiexport.sparsity.dep_rules import ELEMENTWISE

class Expit(torch.nn.Module):
    def forward(self, x):
        return torch.special.expit(x)

def register(registry):
    registry.module(Expit, ELEMENTWISE)

def fails(registry):
    raise ValueError("no rules today\\nsecond line")

def not_a_rule(registry):
    registry.module(Expit, "elementwise")
"""


@pytest.fixture
def rules_dir(tmp_path):
    (tmp_path / "myrules.py").write_text(RULES)
    return tmp_path


def model_with(expit_class: type) -> nn.Module:
    return nn.Sequential(nn.Linear(3, 6), expit_class(), nn.Linear(6, 2))


def first_group_prunable(model: nn.Module) -> bool:
    return build_graph(model, torch.zeros(2, 3)).groups[0].prunable


def test_loaded_rules_apply_only_inside_using_rules(rules_dir):
    rules = load_rules(["myrules:register"], [rules_dir])
    import myrules  # imported from the recipe's folder by load_rules

    model = model_with(myrules.Expit)
    assert not first_group_prunable(model)
    with using_rules(rules) as active:
        assert active is rules and active_rules() is rules
        assert first_group_prunable(model)
    assert not first_group_prunable(model)  # another run does not see them
    assert active_rules().for_module(myrules.Expit()) is None


def test_builtin_rules_are_fresh_copies():
    mine = builtin_rules()
    mine.module(nn.Embedding, mine.for_module(nn.ReLU()))
    assert builtin_rules().for_module(nn.Embedding(2, 2)) is None
    assert active_rules().for_module(nn.Embedding(2, 2)) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "nowhere_rules:register",
            "sparsity.rules: module 'nowhere_rules' not found (searched the recipe's folder, "
            "the current folder, sys.path)",
        ),
        ("myrules:missing", "sparsity.rules: module 'myrules' has no attribute 'missing'"),
        ("myrules:fails", "sparsity.rules: myrules:fails raised ValueError: no rules today"),
        (
            "myrules:not_a_rule",
            "sparsity.rules: myrules:not_a_rule raised TypeError: a rule is a "
            "paiexport.sparsity.rule_registry.Rule, got str",
        ),
    ],
)
def test_bad_rules_are_one_line_naming_the_field(rules_dir, spec, message):
    with pytest.raises(UserError) as caught:
        load_rules([spec], [rules_dir])
    assert str(caught.value) == message
