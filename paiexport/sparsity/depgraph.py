"""Channel dependency graph: which channels of which weights must be pruned together.

The model is traced with torch.fx and every tensor's channel dimension is followed through
the graph as a list of segments, each a slice of a *channel space* (the output channels of
one producer Conv/Linear). Ops that tie channels merge spaces (union-find): residual
add/sub/mul joins, depthwise convolutions (output channel i is input channel i). `torch.cat`
along channels concatenates segments, so every consumer reads each space at its offset;
flatten into a Linear turns a channel into a block of `per` contiguous features. A
`ChannelGroup` is one merged space with every member (weight, dim, offset, per) that holds
its channels. An op the rules do not understand makes the spaces it touches unprunable with
a note naming it, and graph outputs (logits) and model inputs are never prunable: a group is
either removed exactly (see `shrink.py`) or left alone, never approximated.

Why not Torch-Pruning's DepGraph (MIT licence, so usable): it traces autograd `grad_fn`s and
removes channels outright, made for prune-then-finetune; it does not fold the constant a
removed channel still carries (act(norm(bias))) into its consumers, so the pruned model is not
equal to the masked one, which is our contract. It is also a large dependency whose pruners
mutate modules in place. The graph we need is small on torch.fx, and every rule here
either keeps exactness or refuses (leaves the group dense with a note).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from paiexport.errors import first_line
from paiexport.inputs import Inputs, positional

if TYPE_CHECKING:
    from paiexport.sparsity.rule_registry import RuleRegistry

# producer rows, consumer columns, norm, depthwise, heads of nn.MultiheadAttention (q/k/v rows of
# in_proj_weight, not maskable), heads of attention blocks with separate q/k/v Linears (maskable rows)
ROLES = ("out", "in", "norm", "dw", "qkv", "head")
PRODUCERS = ("out", "qkv", "head")


@dataclass(frozen=True)
class Member:
    """Channel c of the group is `param`[offset + c*per : offset + (c+1)*per] along `dim`."""

    module: str
    param: str
    dim: int
    role: str
    offset: int = 0
    per: int = 1

    def span(self, size: int) -> range:
        return range(self.offset, self.offset + size * self.per)


@dataclass(frozen=True)
class ChannelGroup:
    members: tuple[Member, ...]
    size: int
    prunable: bool
    note: str = ""
    kind: str = ""  # "ffn": feed-forward neurons (a rule says so); heads are known by their roles


@dataclass(frozen=True)
class DependencyGraph:
    groups: list[ChannelGroup]
    notes: list[str] = field(default_factory=list)

    @property
    def prunable(self) -> list[int]:
        """Indices of the groups that may lose channels."""
        return [i for i, g in enumerate(self.groups) if g.prunable]


@dataclass(frozen=True)
class Seg:
    space: int | None  # None: channels of a non-prunable tensor (input, unknown op)
    length: int
    per: int = 1


@dataclass(frozen=True)
class State:
    """Channel layout of one traced tensor: channel dim and its segments (empty = no prunable)."""

    dim: int
    segs: tuple[Seg, ...]

    @property
    def spaces(self) -> list[int]:
        return [s.space for s in self.segs if s.space is not None]


FIXED = State(-1, ())


@dataclass
class _Space:
    size: int
    members: list[Member] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kind: str = ""

    def group(self) -> ChannelGroup:
        """Prunable when nothing blocked it and a member produces its channels."""
        prunable = not self.notes and any(m.role in PRODUCERS for m in self.members)
        return ChannelGroup(tuple(self.members), self.size, prunable, "; ".join(self.notes), self.kind)


class Builder:
    """Channel spaces with union-find; rules add members, merge and block spaces."""

    def __init__(self, root: nn.Module, rules: RuleRegistry) -> None:
        self.modules = dict(root.named_modules())
        self.rules = rules
        self.spaces: list[_Space] = []
        self.parent: list[int] = []
        self.notes: list[str] = []

    def new_space(self, size: int, *members: Member, kind: str = "") -> int:
        self.spaces.append(_Space(size, list(members), kind=kind))
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def block(self, spaces: list[int], note: str) -> None:
        for s in spaces:
            self.spaces[s].notes.append(note)

    def groups(self) -> list[ChannelGroup]:
        merged: dict[int, _Space] = {}
        for i, space in enumerate(self.spaces):
            root = merged.setdefault(self.find(i), _Space(space.size))
            root.members.extend(space.members)
            root.notes.extend(n for n in space.notes if n not in root.notes)
            root.kind = root.kind or space.kind
        return [s.group() for s in merged.values()]


def build_graph(model: nn.Module, example: Inputs, rules: RuleRegistry | None = None) -> DependencyGraph:
    """Channel groups of `model` for inputs like `example` (one forward pass). `rules`: the
    registry (default: the active one, `rules.active_rules`)."""
    # The rules import this module's types.
    from paiexport.sparsity.dep_rules import apply_rule
    from paiexport.sparsity.module_graph import module_graph
    from paiexport.sparsity.rules import active_rules

    rules = rules if rules is not None else active_rules()
    modes = {m: m.training for m in model.modules()}
    try:
        gm = _trace(model, rules)
        # eval: a training-mode pass would move BatchNorm running statistics
        with torch.no_grad():
            ShapeProp(gm.eval()).propagate(*positional(model, example))
    except Exception as exc:  # fx cannot trace data-dependent control flow, etc.
        return module_graph(model, rules, f"cannot trace: {first_line(exc)}")
    finally:
        for m, mode in modes.items():
            m.training = mode
    b = Builder(gm, rules)
    states: dict[fx.Node, object] = {}
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            states[node] = FIXED
        elif node.op == "output":
            b.block(_all_spaces(node.args, states), "model output")
        else:
            states[node] = apply_rule(b, node, states, calls, rules)
    return DependencyGraph(b.groups(), b.notes)


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping modules and functions with a registered rule whole."""

    def __init__(self, rules: RuleRegistry) -> None:
        super().__init__(autowrap_functions=rules.wrapped_functions())
        self.rules = rules

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return self.rules.is_leaf(m) or super().is_leaf_module(m, module_qualified_name)


def _trace(model: nn.Module, rules: RuleRegistry) -> fx.GraphModule:
    tracer = _Tracer(rules)
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _all_spaces(args: object, states: dict[fx.Node, object]) -> list[int]:
    found: list[int] = []

    def visit(a: object) -> None:
        st = states.get(a) if isinstance(a, fx.Node) else None
        for s in st if isinstance(st, tuple) else [st]:
            if isinstance(s, State):
                found.extend(s.spaces)

    fx.node.map_aggregate(args, visit)
    return found
