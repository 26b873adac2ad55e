"""The graph of a model torch.fx cannot trace: groups from block rules only, everything else dense,
unknown attention modules named."""

from __future__ import annotations

import torch
from torch import nn

from paiexport.sparsity.depgraph import Builder, Member, build_graph
from paiexport.sparsity.module_graph import module_graph
from paiexport.sparsity.rule_registry import BlockRule
from paiexport.sparsity.rules import builtin_rules


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(4, 6), nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(x)))


class BlockRuleForTest(BlockRule):
    dense_reason = "adds to its input"

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        b.new_space(6, Member(f"{name}.up", "weight", 0, "out"), Member(f"{name}.down", "weight", 1, "in"))


class MyAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.qkv(x)[..., :4]


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.attn = MyAttention()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        if h.sum() > 1e9:
            h = -h
        for block in self.blocks:
            h = block(h)
        return self.head(self.attn(h))


def test_without_block_rules_an_untraceable_model_has_no_groups_as_before():
    graph = build_graph(Untraceable(), torch.zeros(2, 3))
    assert graph.groups == []
    assert graph.notes[0].startswith("cannot trace: TraceError: symbolically traced variables")
    assert graph.notes[1:] == ["no rule for attention MyAttention (attn): kept dense"]


def test_block_rules_give_the_groups_of_an_untraceable_model():
    rules = builtin_rules()
    rules.module(Block, BlockRuleForTest())
    graph = build_graph(Untraceable(), torch.zeros(2, 3), rules)
    assert [(sorted((m.module, m.role) for m in g.members), g.size, g.prunable) for g in graph.groups] == [
        ([("blocks.0.down", "in"), ("blocks.0.up", "out")], 6, True),
        ([("blocks.1.down", "in"), ("blocks.1.up", "out")], 6, True),
    ]
    first, unknown = graph.notes
    assert first.startswith("cannot trace: TraceError: ")
    assert first.endswith(
        ": channel groups come from module rules (2 blocks), everything outside them stays dense, "
        "and so does the width between them (Block adds to its input)"
    )
    assert unknown == "no rule for attention MyAttention (attn): kept dense"


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Block()


class Opaque(BlockRule):
    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        pass


def test_only_outermost_blocks_count_and_never_the_model_itself():
    rules = builtin_rules()
    rules.module(Block, BlockRuleForTest())
    rules.module(Outer, Opaque())
    graph = module_graph(nn.Sequential(Outer(), Block()), rules, "why")
    assert [sorted(m.module for m in g.members) for g in graph.groups] == [["1.down", "1.up"]]
    assert module_graph(Block(), rules, "why").groups == []  # the root is the model, not a block
