"""How each traced op moves, ties or blocks channels (see `depgraph.py` for the model).

Every rule returns the output `State` (or a tuple of states for tuple outputs, or None for a
non-tensor). Anything not listed here is unknown: the spaces it touches are blocked with a
note naming the op, and its output is a non-prunable tensor.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import fx, nn

from paiexport.sparsity.attention import attention_rule, encoder_rule
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


def shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def op_name(b: Builder, node: fx.Node) -> str:
    if node.op == "call_module":
        return f"{type(b.modules[node.target]).__name__} ({node.target})"
    return getattr(node.target, "__name__", str(node.target))


def _inputs(node: fx.Node, states: dict) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda a: found.append(a) if a in states else None)
    return found


def _spaces(nodes: list[fx.Node], states: dict) -> list[int]:
    out: list[int] = []
    for n in nodes:
        st = states[n]
        for s in st if isinstance(st, tuple) else [st]:
            if isinstance(s, State):
                out.extend(s.spaces)
    return out


def apply_rule(b: Builder, node: fx.Node, states: dict, calls: dict[str, int]) -> object:
    """Output state of `node`; unknown ops block what they touch."""
    if "tensor_meta" not in node.meta:
        return None  # sizes, shapes, python values: no channels
    first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    st = states.get(first) if first is not None else None
    why = "unsupported op"
    if node.op == "call_module" and calls[node.target] > 1 and list(b.modules[node.target].parameters()):
        result, why = None, "shared module (called more than once)"  # one slicing, two layouts
    elif node.op == "call_module":
        result = _module_rule(b, node, b.modules[node.target], st, states)
    elif node.op == "call_function" and node.target is operator.getitem and isinstance(st, tuple):
        result = st[node.args[1]]
    else:
        result = _function_rule(b, node, st, states)
    if result is None:
        b.block(_spaces(_inputs(node, states), states), f"{why} {op_name(b, node)}")
        return FIXED
    return result


def _module_rule(b: Builder, node: fx.Node, m: nn.Module, st: object, states: dict) -> object:
    name = node.target
    if not isinstance(st, State):
        return None
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return _conv(b, node, m, st)
    if isinstance(m, nn.Linear):
        return _linear(b, node, m, st)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return _per_channel(b, st, 1, lambda s, off: Member(name, "weight", 0, "norm", off, s.per))
    if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
        # Statistics run over the channels: removing a constant channel changes every output.
        b.block(st.spaces, f"{type(m).__name__} ({name}) normalizes over channels")
        return st
    if isinstance(m, ELEMENTWISE_MODULES):
        return st
    if isinstance(m, SPATIAL_MODULES):
        return st if not st.spaces or st.dim == 1 else None
    if isinstance(m, nn.Flatten):
        return _flatten(node, st, m.start_dim, m.end_dim)
    if isinstance(m, nn.MultiheadAttention):
        return attention_rule(b, node, m, _spaces(_inputs(node, states), states))
    if isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerEncoder)):
        return encoder_rule(b, name, m, _spaces(_inputs(node, states), states))
    return None


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


def _conv(b: Builder, node: fx.Node, m: nn.Module, st: State) -> State | None:
    name = node.target
    if m.groups == 1:
        if not _consume(b, st, name, 1, "conv"):
            return None
        return State(1, (Seg(b.new_space(m.out_channels, Member(name, "weight", 0, "out")), m.out_channels),))
    if m.groups == m.in_channels == m.out_channels:  # depthwise: channel i stays channel i
        return _per_channel(b, st, 1, lambda s, off: Member(name, "weight", 0, "dw", off))
    b.block(st.spaces, f"grouped conv {name} (groups={m.groups}) kept dense")
    return FIXED


def _linear(b: Builder, node: fx.Node, m: nn.Linear, st: State) -> State | None:
    name = node.target
    if not _consume(b, st, name, len(shape(node.args[0])) - 1, "linear"):
        return None
    space = b.new_space(m.out_features, Member(name, "weight", 0, "out"))
    return State(len(shape(node)) - 1, (Seg(space, m.out_features),))


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


def _function_rule(b: Builder, node: fx.Node, st: object, states: dict) -> object:
    target = node.target
    joins = target in JOIN_FUNCTIONS or target in JOIN_METHODS
    if not isinstance(st, State) and target is not torch.cat and not joins:
        return None
    if target in ELEMENTWISE_FUNCTIONS or target in ELEMENTWISE_METHODS:
        return st
    if target in SPATIAL_FUNCTIONS:
        return st if not st.spaces or st.dim == 1 else None
    if target in (torch.flatten, "flatten"):
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
        end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
        return _flatten(node, st, start, end)
    if target in ("view", "reshape"):
        return _reshape(node, st)
    if target in REDUCE:
        return _reduce(node, st)
    if joins:
        return _join(b, node, states)
    if target is torch.cat:
        return _cat(b, node, states)
    return None


def _reshape(node: fx.Node, st: State) -> State | None:
    if not st.spaces:
        return FIXED
    before, after = shape(node.args[0]), shape(node)
    if before == after:
        return st
    if len(after) == 2 and after[0] == before[0]:
        return _flatten(node, st, 1, -1)
    return None


def _reduce(node: fx.Node, st: State) -> State | None:
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


def _join(b: Builder, node: fx.Node, states: dict) -> State | None:
    tensors = [a for a in node.args if isinstance(a, fx.Node) and isinstance(states.get(a), State)]
    if any(len(shape(t)) != len(shape(node)) for t in tensors):
        # Broadcasting from fewer dims: fine when nothing prunable is involved, unclear otherwise.
        return FIXED if not _spaces(tensors, states) else None
    # Same rank (e.g. squeeze-excitation's (N, C, 1, 1) gate): _merge checks the channel sizes.
    return _merge(b, [(t, states[t]) for t in tensors], op_name(b, node))


def _cat(b: Builder, node: fx.Node, states: dict) -> State | None:
    tensors = list(node.args[0])
    ndim = len(shape(node))
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0) % ndim
    sts = [states[t] for t in tensors]
    real = [s for s in sts if s.spaces]
    if not real:
        return FIXED
    if real[0].dim != dim:  # stacked along another dim: channels of all inputs coincide
        return _merge(b, list(zip(tensors, sts, strict=True)), "cat")
    if any(s.dim != dim for s in real):
        return None
    segs = tuple(seg for t, s in zip(tensors, sts, strict=True) for seg in _segments(t, s, dim))
    return State(dim, segs)
