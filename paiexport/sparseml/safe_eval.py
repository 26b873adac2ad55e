"""Arithmetic for SparseML's `eval(...)` strings, without Python's eval.

SparseML ran these through a restricted eval; recipes in the wild only use numbers,
+ - * /, unary minus, parentheses and the names of top-level variables. We parse with
`ast` and walk a whitelist of node types, so nothing else (calls, attributes, subscripts,
comprehensions, dunder tricks) can run.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping

from paiexport.errors import UserError

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class UnknownName(UserError):
    """A name that is not (yet) a numeric variable; the loader retries after others resolve."""

    def __init__(self, name: str, expression: str) -> None:
        super().__init__(f"eval({expression}): unknown variable {name!r}")
        self.name = name


def safe_eval(expression: str, variables: Mapping[str, Number]) -> Number:
    """Value of an arithmetic expression over numeric `variables`; anything else is a UserError."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise UserError(f"eval({expression}): not an arithmetic expression") from None
    return _walk(tree.body, variables, expression)


def _walk(node: ast.AST, variables: Mapping[str, Number], expression: str) -> Number:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in variables:
            raise UnknownName(node.id, expression)
        return variables[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _walk(node.operand, variables, expression)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _walk(node.left, variables, expression)
        right = _walk(node.right, variables, expression)
        if isinstance(node.op, ast.Div) and right == 0:
            raise UserError(f"eval({expression}): division by zero")
        return _BINARY[type(node.op)](left, right)
    # Why a whitelist: anything outside numbers and + - * / is not recipe arithmetic.
    what = type(node).__name__.lower()
    raise UserError(f"eval({expression}): {what} is not allowed (numbers, + - * /, variables only)")
