"""Bounded YAML for recipes and `--set` values: hostile input fails fast with one line.

PyYAML's safe loader still builds aliases as shared references: a 1 kB "billion laughs"
document is tiny in memory until something walks it (our JSON copy, pydantic), an alias
inside its own anchor (`a: &l [*l]`) makes a cyclic list, and the composer recurses once
per nesting level (RecursionError at ~500 levels). So the composed node graph is checked
before anything is constructed: nesting depth while composing, then the size the document
would have once every alias is expanded, and alias cycles.
"""

from __future__ import annotations

from typing import Any

import yaml

from paiexport.errors import UserError

MAX_DEPTH = 64  # recipes nest 4 levels; deep enough for any hand-written value
MAX_NODES = 100_000  # after alias expansion; the bundled recipes have < 200
MAX_CHARS = 4_000_000  # document size


class RecipeYAMLError(ValueError):
    """The document is valid YAML in principle but too big, too deep or cyclic."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses to nest deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise RecipeYAMLError(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    """Nodes in the fully expanded document (shared subtrees counted every time they appear).

    Recursion is safe: the composer already bounded the depth.
    """
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise RecipeYAMLError("an alias refers to its own anchor (cyclic document)")
    active.add(key)
    total = 1
    for child in _children(node):
        total += _expanded_size(child, sizes, active)
        if total > MAX_NODES:
            raise RecipeYAMLError(f"more than {MAX_NODES} values once aliases are expanded")
    active.discard(key)
    sizes[key] = total
    return total


def safe_load(text: str, loader_class: type[BoundedLoader] = BoundedLoader) -> Any:
    """yaml.safe_load with bounds; raises RecipeYAMLError (bounds) or yaml.YAMLError (syntax).

    `loader_class` lets SparseML recipes add their `!…Modifier` constructors to the same bounds.
    """
    if len(text) > MAX_CHARS:
        raise RecipeYAMLError(f"larger than {MAX_CHARS} characters")
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_recipe_text(text: str, source: object, loader_class: type[BoundedLoader] = BoundedLoader) -> Any:
    """`safe_load` for a recipe file: a refusal or a syntax error is one `UserError` naming `source`."""
    try:
        return safe_load(text, loader_class)
    except RecipeYAMLError as exc:
        raise UserError(f"{source}: recipe refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{source}: not valid YAML{where}") from None
