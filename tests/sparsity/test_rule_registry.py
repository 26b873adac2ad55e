"""The graph's rule registry: lookups by class, qualified name, MRO and function; a user's rule
for their own module or function is what the graph uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paiexport.sparsity.dep_rules import ELEMENTWISE
from paiexport.sparsity.depgraph import Builder, Member, build_graph
from paiexport.sparsity.rule_registry import BlockRule, FnRule, Rule, RuleRegistry
from paiexport.sparsity.rules import builtin_rules


class Expit(nn.Module):
    """An activation the built-in rules do not know (torch.special.expit is no listed function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.expit(x)


def soft_sign(x: torch.Tensor) -> torch.Tensor:
    return x / (1 + torch.abs(x))  # abs is no listed function either


class WithExpit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(3, 6), Expit(), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WithSoftSign(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 6), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(soft_sign(self.fc1(x)))


def fc1_group(model: nn.Module, rules: RuleRegistry) -> tuple[bool, str]:
    graph = build_graph(model, torch.zeros(2, 3), rules)
    group = next(g for g in graph.groups if any(m.module == "fc1" and m.role == "out" for m in g.members))
    return group.prunable, group.note


def test_a_user_rule_for_their_own_module_is_used():
    assert fc1_group(WithExpit(), builtin_rules()) == (False, "unsupported op special_expit")
    rules = builtin_rules()
    rules.module(Expit, ELEMENTWISE)
    assert fc1_group(WithExpit(), rules) == (True, "")


def test_a_user_rule_for_their_own_function_is_used():
    assert fc1_group(WithSoftSign(), builtin_rules()) == (False, "unsupported op abs; unsupported op truediv")
    rules = builtin_rules()
    rules.function(soft_sign, ELEMENTWISE)  # the tracer keeps it as one call
    assert fc1_group(WithSoftSign(), rules) == (True, "")


def test_lookup_by_qualified_name_and_through_the_mro():
    rules = RuleRegistry()
    rule = FnRule(lambda call: call.state)
    rules.module(f"{__name__}.Expit", rule)

    class Sub(Expit):
        pass

    assert rules.for_module(Expit()) is rule and rules.for_module(Sub()) is rule
    assert rules.for_module(nn.ReLU()) is None
    # Only the registered class itself is kept whole by the tracer: a subclass has its own forward.
    assert rules.is_leaf(Expit()) and not rules.is_leaf(Sub())


def test_copies_are_independent_and_only_rules_register():
    base = RuleRegistry()
    copy = base.copy()
    copy.function("view", ELEMENTWISE)
    assert copy.for_function("view") is ELEMENTWISE and base.for_function("view") is None
    assert base.for_function([1]) is None  # an unhashable target has no rule
    with pytest.raises(
        TypeError, match=r"a rule is a paiexport\.sparsity\.rule_registry\.Rule, got function"
    ):
        base.module(Expit, lambda call: None)
    assert Rule().trace(None) is None  # the base rule understands nothing


class Gate(nn.Module):
    """A user block: hidden units of `up` gated and read by `down`; the block's width stays dense."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(4, 5), nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(x)))


class GateRule(BlockRule):
    dense_reason = "adds to its input"

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        b.new_space(5, Member(f"{name}.up", "weight", 0, "out"), Member(f"{name}.down", "weight", 1, "in"))


def test_a_block_rule_adds_its_groups_and_keeps_its_input_dense():
    model = nn.Sequential(nn.Linear(3, 4), Gate(), nn.Linear(4, 2))
    rules = builtin_rules()
    rules.module(Gate, GateRule())
    graph = build_graph(model, torch.zeros(2, 3), rules)
    found = {(frozenset((m.module, m.role) for m in g.members), g.prunable, g.note) for g in graph.groups}
    assert found == {
        (frozenset({("0", "out")}), False, "Gate (1) adds to its input"),
        (frozenset({("1.up", "out"), ("1.down", "in")}), True, ""),
        (frozenset({("2", "out")}), False, "model output"),
    }


def test_only_functions_outside_torch_are_wrapped_for_the_tracer():
    rules = builtin_rules()
    assert rules.wrapped_functions() == ()  # torch's own functions are recorded by fx already
    rules.function(soft_sign, ELEMENTWISE)
    assert rules.wrapped_functions() == (soft_sign,)
