"""The dependency graph's rules: one registry from module type or traced function to a rule object.

A rule says how one op moves, ties or blocks channels. `Rule.trace` handles one call of the
torch.fx graph (`depgraph.py`) and returns the output's channel layout (a `State`, a tuple of
them, or None: not understood, the spaces it touches are blocked with a note naming the op).
A `BlockRule` treats a whole module as one op (attention, a transformer layer): its input and
output width stay dense, and `groups` adds the channel groups it holds inside (heads, MLP
units). Block rules also build the graph of a model torch.fx cannot trace (Hugging Face
models): every outermost module with a block rule contributes its groups, everything else
stays dense.

The built-in rules (`dep_rules.py`, `attention.py`, `hf_rules.py`) are registered the same way
a user's are (`rules.py` assembles them). `RuleRegistry.module(kind, rule)` takes a class, or
its qualified name "package.module.Class" (so rules for an optional package register without
importing it); a module's rule is the one of the first class of its MRO that has one.
`RuleRegistry.function(target, rule)` takes a function (plain Python functions are then kept
whole by the tracer) or a method name such as "view".
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import fx, nn

from paiexport.sparsity.depgraph import FIXED, Builder, State


@dataclass
class Call:
    """One traced call as a rule sees it: the builder, the fx node, its module (None for functions)."""

    builder: Builder
    node: fx.Node
    module: nn.Module | None
    states: dict[fx.Node, object]

    @property
    def name(self) -> str:
        """The module's qualified name, or the function's name."""
        if self.module is not None:
            return str(self.node.target)
        return getattr(self.node.target, "__name__", str(self.node.target))

    @property
    def label(self) -> str:
        """How notes name this op: "Linear (fc1)" or "relu"."""
        return f"{type(self.module).__name__} ({self.name})" if self.module is not None else self.name

    @property
    def state(self) -> object:
        """The layout of the first argument (None when it is not a traced tensor)."""
        first = self.node.args[0] if self.node.args else None
        return self.states.get(first) if isinstance(first, fx.Node) else None

    def inputs(self) -> list[fx.Node]:
        """The traced arguments of the call."""
        found: list[fx.Node] = []
        fx.node.map_arg(
            (self.node.args, self.node.kwargs), lambda a: found.append(a) if a in self.states else None
        )
        return found

    def input_spaces(self) -> list[int]:
        """Every channel space the call's arguments carry."""
        out: list[int] = []
        for n in self.inputs():
            st = self.states[n]
            for s in st if isinstance(st, tuple) else [st]:
                if isinstance(s, State):
                    out.extend(s.spaces)
        return out


class Rule:
    """How one module type or function moves channels; the default understands nothing."""

    def trace(self, call: Call) -> object:
        """The output's layout: a `State`, a tuple of states, or None (not understood)."""
        return None


class FnRule(Rule):
    """A rule from a function `(call) -> State | None`; `needs_state`: None unless the first
    argument is a traced tensor."""

    def __init__(self, fn: Callable[[Call], object], needs_state: bool = True) -> None:
        self.fn, self.needs_state = fn, needs_state

    def trace(self, call: Call) -> object:
        if self.needs_state and not isinstance(call.state, State):
            return None
        return self.fn(call)


class BlockRule(Rule):
    """A module seen as a whole: input and output stay dense, `groups` adds what it holds inside."""

    dense_reason = "keeps its width"  # completes "BertLayer (encoder.layer.0) ..." in the notes

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        """Add the channel groups inside `module` (named `name` in the model) to `b`."""
        raise NotImplementedError

    def trace(self, call: Call) -> object:
        if call.module is None or not isinstance(call.state, State):  # registered for a function
            return None
        call.builder.block(call.input_spaces(), f"{call.label} {self.dense_reason}")
        self.groups(call.builder, call.name, call.module)
        return FIXED


def qualified(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


class RuleRegistry:
    """Module types and traced functions -> rules (see the module docstring)."""

    def __init__(self) -> None:
        self._modules: dict[str, Rule] = {}  # by qualified class name
        self._functions: dict[Any, Rule] = {}

    def copy(self) -> RuleRegistry:
        new = RuleRegistry()
        new._modules, new._functions = dict(self._modules), dict(self._functions)
        return new

    def module(self, kind: type | str, rule: Rule) -> None:
        """Use `rule` for modules of class `kind` (a class or "package.module.Class") and subclasses."""
        self._modules[kind if isinstance(kind, str) else qualified(kind)] = _checked(rule)

    def function(self, target: Callable[..., Any] | str, rule: Rule) -> None:
        """Use `rule` for calls of `target` (a function, or a method name such as "view")."""
        self._functions[target] = _checked(rule)

    def for_module(self, module: nn.Module) -> Rule | None:
        for kind in type(module).__mro__:
            rule = self._modules.get(qualified(kind))
            if rule is not None:
                return rule
        return None

    def for_function(self, target: object) -> Rule | None:
        try:
            return self._functions.get(target)
        except TypeError:  # an unhashable target
            return None

    def is_block(self, module: nn.Module) -> bool:
        return isinstance(self.for_module(module), BlockRule)

    def is_leaf(self, module: nn.Module) -> bool:
        """Modules the tracer keeps whole: those whose own class has a rule (torch.nn's modules are
        leaves anyway; a subclass with its own forward is traced into, as before there were rules)."""
        return qualified(type(module)) in self._modules

    def wrapped_functions(self) -> tuple[Callable[..., Any], ...]:
        """Plain Python functions with a rule, outside torch (which fx records already): the tracer
        records each as one call instead of tracing into it."""
        return tuple(
            f
            for f in self._functions
            if isinstance(f, types.FunctionType) and not (f.__module__ or "").startswith("torch")
        )


def _checked(rule: object) -> Rule:
    if not isinstance(rule, Rule):
        raise TypeError(f"a rule is a paiexport.sparsity.rule_registry.Rule, got {type(rule).__name__}")
    return rule
