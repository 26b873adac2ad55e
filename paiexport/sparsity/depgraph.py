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

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from paiexport.errors import first_line
from paiexport.inputs import Inputs, positional

ROLES = ("out", "in", "norm", "dw", "qkv")  # producer rows, consumer columns, norm, depthwise, heads


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

    def group(self) -> ChannelGroup:
        """Prunable when nothing blocked it and a member produces its channels."""
        prunable = not self.notes and any(m.role in ("out", "qkv") for m in self.members)
        return ChannelGroup(tuple(self.members), self.size, prunable, "; ".join(self.notes))


class Builder:
    """Channel spaces with union-find; rules add members, merge and block spaces."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.spaces: list[_Space] = []
        self.parent: list[int] = []
        self.notes: list[str] = []

    def new_space(self, size: int, *members: Member) -> int:
        self.spaces.append(_Space(size, list(members)))
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
        return [s.group() for s in merged.values()]


def build_graph(model: nn.Module, example: Inputs) -> DependencyGraph:
    """Channel groups of `model` for inputs shaped like `example` (one forward pass)."""
    from paiexport.sparsity.dep_rules import apply_rule  # the rules import this module's types

    modes = {m: m.training for m in model.modules()}
    try:
        gm = fx.symbolic_trace(model)
        # eval: a training-mode pass would move BatchNorm running statistics
        with torch.no_grad():
            ShapeProp(gm.eval()).propagate(*positional(model, example))
    except Exception as exc:  # fx cannot trace data-dependent control flow, etc.
        return DependencyGraph([], [f"cannot trace: {first_line(exc)}"])
    finally:
        for m, mode in modes.items():
            m.training = mode
    b = Builder(gm)
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
            states[node] = apply_rule(b, node, states, calls)
    return DependencyGraph(b.groups(), b.notes)


def _all_spaces(args: object, states: dict[fx.Node, object]) -> list[int]:
    found: list[int] = []

    def visit(a: object) -> None:
        st = states.get(a) if isinstance(a, fx.Node) else None
        for s in st if isinstance(st, tuple) else [st]:
            if isinstance(s, State):
                found.extend(s.spaces)

    fx.node.map_aggregate(args, visit)
    return found
