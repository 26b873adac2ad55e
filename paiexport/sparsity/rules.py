"""The rule registry a dependency graph is built with: the built-in rules plus a run's own.

`builtin_rules()` holds every built-in rule (`dep_rules.py`: Conv, Linear, norms, element-wise
and spatial ops, reshapes, joins; `attention.py`: nn.MultiheadAttention and
nn.TransformerEncoderLayer; `hf_rules.py`: Hugging Face encoder and decoder layers).
A recipe's `sparsity.rules: ["myrules:register"]` names callables imported from the recipe's
folder (`paiexport.importing`); `load_rules` calls each with a copy of the built-ins, where it
registers its own rules (`registry.module(MyOp, rule)`, `registry.function(my_fn, rule)`).
`using_rules(registry)` makes that registry the one `build_graph` uses inside the `with` (a
context variable), so only the run that names the rules sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from paiexport.errors import shorten
from paiexport.importing import import_callable, user_code
from paiexport.sparsity.attention import register_attention
from paiexport.sparsity.dep_rules import register_builtins
from paiexport.sparsity.hf_rules import register_hf
from paiexport.sparsity.rule_registry import RuleRegistry

_ACTIVE: ContextVar[RuleRegistry | None] = ContextVar("paiexport_rules", default=None)


@cache
def _builtins() -> RuleRegistry:
    rules = RuleRegistry()
    register_builtins(rules)
    register_attention(rules)
    register_hf(rules)
    return rules


def builtin_rules() -> RuleRegistry:
    """A fresh copy of the built-in rules (add to it freely)."""
    return _builtins().copy()


def active_rules() -> RuleRegistry:
    """The registry of the enclosing `using_rules`, else the built-in rules."""
    rules = _ACTIVE.get()
    return rules if rules is not None else _builtins()


@contextmanager
def using_rules(rules: RuleRegistry) -> Iterator[RuleRegistry]:
    """Build every dependency graph inside the `with` with `rules`."""
    token = _ACTIVE.set(rules)
    try:
        yield rules
    finally:
        _ACTIVE.reset(token)


def load_rules(specs: list[str], folders: list[Path]) -> RuleRegistry:
    """The built-ins plus what each "module:callable" of `specs` registers (`sparsity.rules`)."""
    rules = builtin_rules()
    for spec in specs:
        register = import_callable(spec, folders, "sparsity.rules")
        with user_code(f"sparsity.rules: {shorten(spec)}"):
            register(rules)
    return rules
