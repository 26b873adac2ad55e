"""The built-in rules for traced ops: how each one moves, ties or blocks channels.

Every rule returns the output `State` (or a tuple of states for tuple outputs, or None for an
op it does not understand). `apply_rule` looks the op up in the registry (`rule_registry.py`);
anything without a rule is unknown: the spaces it touches are blocked with a note naming the
op, and its output is a non-prunable tensor. `register_builtins` fills a registry with the
rules of this module (Conv, Linear, norms, element-wise and spatial ops, flatten, reshape,
reductions, joins, concatenation).
"""

from __future__ import annotations

import math
import operator

import torch
from torch import fx, nn

from paiexport.sparsity.depgraph import FIXED, Builder, Member, Seg, State
from paiexport.sparsity.op_kinds import (
    ELEMENTWISE_FUNCTIONS,
    ELEMENTWISE_METHODS,
    ELEMENTWISE_MODULES,
    JOIN_FUNCTIONS,
    JOIN_METHODS,
    REDUCE,
    SPATIAL_FUNCTIONS,
    SPATIAL_MODULES,
)
from paiexport.sparsity.rule_registry import Call, FnRule, RuleRegistry


def shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def apply_rule(b: Builder, node: fx.Node, states: dict, calls: dict[str, int], rules: RuleRegistry) -> object:
    """Output state of `node`; unknown ops block what they touch."""
    if "tensor_meta" not in node.meta:
        return None  # sizes, shapes, python values: no channels
    module = b.modules[node.target] if node.op == "call_module" else None
    call = Call(b, node, module, states)
    st = call.state
    why = "unsupported op"
    if module is not None and calls[node.target] > 1 and list(module.parameters()):
        result, why = None, "shared module (called more than once)"  # one slicing, two layouts
    elif node.op == "call_function" and node.target is operator.getitem and isinstance(st, tuple):
        result = st[node.args[1]]
    else:
        rule = rules.for_module(module) if module is not None else rules.for_function(node.target)
        result = rule.trace(call) if rule is not None else None
    if result is None:
        b.block(call.input_spaces(), f"{why} {call.label}")
        return FIXED
    return result


def _consume(b: Builder, st: State, name: str, dim: int, what: str) -> bool:
    """Record `name`'s input columns for each segment; False if the layout does not fit."""
    if not st.spaces:
        return True
    if st.dim != dim or (what == "conv" and any(s.per != 1 for s in st.segs)):
        return False
    offset = 0
    for s in st.segs:
        if s.space is not None:
            b.spaces[s.space].members.append(Member(name, "weight", 1, "in", offset, s.per))
        offset += s.length * s.per
    return True


def _conv(call: Call) -> State | None:
    b, name, m, st = call.builder, call.name, call.module, call.state
    if m.groups == 1:
        if not _consume(b, st, name, 1, "conv"):
            return None
        return State(1, (Seg(b.new_space(m.out_channels, Member(name, "weight", 0, "out")), m.out_channels),))
    if m.groups == m.in_channels == m.out_channels:  # depthwise: channel i stays channel i
        return _per_channel(b, st, 1, lambda s, off: Member(name, "weight", 0, "dw", off))
    b.block(st.spaces, f"grouped conv {name} (groups={m.groups}) kept dense")
    return FIXED


def _linear(call: Call) -> State | None:
    b, name, m, node = call.builder, call.name, call.module, call.node
    if not _consume(b, call.state, name, len(shape(node.args[0])) - 1, "linear"):
        return None
    space = b.new_space(m.out_features, Member(name, "weight", 0, "out"))
    return State(len(shape(node)) - 1, (Seg(space, m.out_features),))


def _batchnorm(call: Call) -> State | None:
    name = call.name
    return _per_channel(
        call.builder, call.state, 1, lambda s, off: Member(name, "weight", 0, "norm", off, s.per)
    )


def _normalizes(call: Call) -> State:
    # Statistics run over the channels: removing a constant channel changes every output.
    call.builder.block(call.state.spaces, f"{call.label} normalizes over channels")
    return call.state


def _per_channel(b: Builder, st: State, dim: int, member) -> State | None:
    """Channel-wise modules (BN, depthwise conv): each segment gets a member; layout kept."""
    if not st.spaces:
        return st
    if st.dim != dim:
        return None
    offset = 0
    for s in st.segs:
        if s.space is not None:
            b.spaces[s.space].members.append(member(s, offset))
        offset += s.length * s.per
    return st


def _flatten(node: fx.Node, st: State, start: int, end: int) -> State | None:
    if not st.spaces:
        return FIXED
    in_shape = shape(node.args[0])
    if start != 1 or end not in (-1, len(in_shape) - 1) or st.dim != 1:
        return None
    extra = math.prod(in_shape[2:])
    return State(1, tuple(Seg(s.space, s.length, s.per * extra) for s in st.segs))


def _flatten_module(call: Call) -> State | None:
    return _flatten(call.node, call.state, call.module.start_dim, call.module.end_dim)


def _flatten_function(call: Call) -> State | None:
    node = call.node
    start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
    end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
    return _flatten(node, call.state, start, end)


def _elementwise(call: Call) -> State:
    return call.state


def _spatial(call: Call) -> State | None:
    st = call.state
    return st if not st.spaces or st.dim == 1 else None


def _reshape(call: Call) -> State | None:
    node, st = call.node, call.state
    if not st.spaces:
        return FIXED
    before, after = shape(node.args[0]), shape(node)
    if before == after:
        return st
    if len(after) == 2 and after[0] == before[0]:
        return _flatten(node, st, 1, -1)
    return None


def _reduce(call: Call) -> State | None:
    node, st = call.node, call.state
    if not st.spaces:
        return FIXED
    ndim = len(shape(node.args[0]))
    dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if dims is None:
        return None
    dims = {d % ndim for d in ([dims] if isinstance(dims, int) else dims)}
    keepdim = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
    if st.dim in dims or any(s.per != 1 for s in st.segs):
        return None
    return State(st.dim if keepdim else st.dim - sum(d < st.dim for d in dims), st.segs)


def _segments(node: fx.Node, st: State, dim: int) -> tuple[Seg, ...]:
    return st.segs if st.spaces else (Seg(None, shape(node)[dim]),)


def _merge(b: Builder, pairs: list[tuple[fx.Node, State]], op: str) -> State:
    """Tensors joined elementwise share channels: union segment by segment, or block all."""
    real = [(n, s) for n, s in pairs if s.spaces]
    if not real:
        return FIXED
    dim = real[0][1].dim
    layouts = [_segments(n, s, dim) for n, s in pairs]
    same = all(s.dim == dim for _, s in real) and all(
        [(x.length, x.per) for x in lay] == [(x.length, x.per) for x in layouts[0]] for lay in layouts
    )
    if not same:
        b.block([sp for _, s in real for sp in s.spaces], f"{op} of tensors with different channel layouts")
        return FIXED
    for segs in zip(*layouts, strict=True):
        spaces = [s.space for s in segs if s.space is not None]
        if len(spaces) < len(segs):
            b.block(spaces, f"{op} with a non-prunable tensor")
        for s in spaces[1:]:
            b.union(spaces[0], s)
    return real[0][1]


def _join(call: Call) -> State | None:
    node, states = call.node, call.states
    tensors = [a for a in node.args if isinstance(a, fx.Node) and isinstance(states.get(a), State)]
    if any(len(shape(t)) != len(shape(node)) for t in tensors):
        # Broadcasting from fewer dims: fine when nothing prunable is involved, unclear otherwise.
        return FIXED if not any(states[t].spaces for t in tensors) else None
    # Same rank (e.g. squeeze-excitation's (N, C, 1, 1) gate): _merge checks the channel sizes.
    return _merge(call.builder, [(t, states[t]) for t in tensors], call.label)


def _cat(call: Call) -> State | None:
    node, states = call.node, call.states
    tensors = list(node.args[0])
    ndim = len(shape(node))
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0) % ndim
    sts = [states[t] for t in tensors]
    real = [s for s in sts if s.spaces]
    if not real:
        return FIXED
    if real[0].dim != dim:  # stacked along another dim: channels of all inputs coincide
        return _merge(call.builder, list(zip(tensors, sts, strict=True)), "cat")
    if any(s.dim != dim for s in real):
        return None
    segs = tuple(seg for t, s in zip(tensors, sts, strict=True) for seg in _segments(t, s, dim))
    return State(dim, segs)


ELEMENTWISE = FnRule(_elementwise)  # channels pass through unchanged (activations, dropout, ...)
SPATIAL = FnRule(_spatial)  # per channel over space (pooling, resizing): channels kept in dim 1


def register_builtins(rules: RuleRegistry) -> None:
    """The rules of this module, by module type and by traced function."""
    for kind in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        rules.module(kind, FnRule(_conv))
    rules.module(nn.Linear, FnRule(_linear))
    rules.module(nn.modules.batchnorm._BatchNorm, FnRule(_batchnorm))
    for kind in (nn.LayerNorm, nn.GroupNorm):
        rules.module(kind, FnRule(_normalizes))
    for kind in ELEMENTWISE_MODULES:
        rules.module(kind, ELEMENTWISE)
    for kind in SPATIAL_MODULES:
        rules.module(kind, SPATIAL)
    rules.module(nn.Flatten, FnRule(_flatten_module))
    for target in ELEMENTWISE_FUNCTIONS | ELEMENTWISE_METHODS:
        rules.function(target, ELEMENTWISE)
    for target in SPATIAL_FUNCTIONS:
        rules.function(target, SPATIAL)
    for target in (torch.flatten, "flatten"):
        rules.function(target, FnRule(_flatten_function))
    for target in ("view", "reshape"):
        rules.function(target, FnRule(_reshape))
    for target in REDUCE:
        rules.function(target, FnRule(_reduce))
    for target in JOIN_FUNCTIONS | JOIN_METHODS:
        rules.function(target, FnRule(_join, needs_state=False))
    rules.function(torch.cat, FnRule(_cat, needs_state=False))
