"""The dependency graph of a model torch.fx cannot trace, from its modules' block rules alone.

Hugging Face models do not trace (transformers 5 dropped `transformers.utils.fx`, and plain
torch.fx fails in their embeddings), yet their heads and feed-forward neurons are where the
speed is. Every outermost module whose class has a `BlockRule` (`rule_registry.py`) adds the
groups it holds inside; nothing else is grouped, so every other weight (embeddings, pooler,
classifier, the hidden size between the blocks) stays dense, and the notes say so. Attention
modules that no rule covers are named in a note: their heads stay dense, never guessed.
"""

from __future__ import annotations

from torch import nn

from paiexport.sparsity.depgraph import Builder, DependencyGraph
from paiexport.sparsity.rule_registry import BlockRule, RuleRegistry


def _outermost_blocks(model: nn.Module, rules: RuleRegistry) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """(name, module) of the outermost modules with a block rule, and the attention modules
    outside them (named "Class (name)")."""
    blocks: list[tuple[str, nn.Module]] = []
    unknown: list[str] = []

    def visit(name: str, module: nn.Module) -> None:
        if rules.is_block(module):
            blocks.append((name, module))
            return
        if "Attention" in type(module).__name__ and any(True for _ in module.parameters()):
            unknown.append(f"{type(module).__name__} ({name})")
            return
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}", child)

    for name, child in model.named_children():  # the model itself is never one block
        visit(name, child)
    return blocks, unknown


def module_graph(model: nn.Module, rules: RuleRegistry, why: str) -> DependencyGraph:
    """Groups of the block rules' modules; `why` says why the model was not traced."""
    blocks, unknown = _outermost_blocks(model, rules)
    notes = [why]
    if unknown:
        notes.append(
            f"no rule for attention {', '.join(unknown[:3])}{' …' if len(unknown) > 3 else ''}: kept dense"
        )
    if not blocks:
        return DependencyGraph([], notes)
    b = Builder(model, rules)
    kinds: dict[str, str] = {}
    for name, module in blocks:
        rule = rules.for_module(module)
        if not isinstance(rule, BlockRule):  # is_block said it is one
            continue
        rule.groups(b, name, module)
        kinds.setdefault(type(module).__name__, rule.dense_reason)
    described = "; ".join(f"{kind} {reason}" for kind, reason in kinds.items())
    notes[0] = (
        f"{why}: channel groups come from module rules ({len(blocks)} blocks), everything outside "
        f"them stays dense, and so does the width between them ({described})"
    )
    return DependencyGraph(b.groups(), [*notes, *b.notes])
