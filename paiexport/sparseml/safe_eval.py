"""Arithmetic for SparseML's `eval(...)` strings, without Python's eval.

SparseML ran these through a restricted eval; recipes in the wild only use numbers,
+ - * /, unary minus, parentheses and the names of top-level variables. We parse with
`ast` and walk a whitelist of node types, so nothing else (calls, attributes, subscripts,
comprehensions, dunder tricks) can run.

Everything is bounded, so a hostile expression is refused at once: the text's length, its
nesting (parentheses and signs, counted on the text before parsing), the number of nodes,
and every number (each constant, variable and intermediate result must be finite and below
MAX_ABS: a chain of squarings cannot grow a number of billions of digits).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

from paiexport.errors import UserError, shorten

Number = int | float

MAX_CHARS = 1000
MAX_DEPTH = 50  # parentheses plus unary signs, nested
MAX_NODES = 200
MAX_ABS = 1e15

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _refuse(expression: str, why: str) -> UserError:
    """`eval(<expression, elided>): why`, one short line."""
    return UserError(f"eval({shorten(expression.strip(), 60)}): {why}")


class UnknownName(UserError):
    """A name that is not (yet) a numeric variable; the loader retries after others resolve."""

    def __init__(self, name: str, expression: str) -> None:
        super().__init__(str(_refuse(expression, f"unknown variable {shorten(name)!r}")))
        self.name = name


def text_depth(text: str) -> int:
    """Nesting of `text` as written: each open parenthesis and each pending unary sign counts one."""
    depth = deepest = 0
    signs = [0]  # unary signs pending per parenthesis level
    operand_before = False  # after an operand or ')', + and - are binary
    for char in text:
        if char.isspace():
            continue
        if char == "(":
            depth += 1
            signs.append(0)
            operand_before = False
        elif char == ")":
            if len(signs) > 1:  # an unbalanced ")" is left to the parser
                depth -= signs.pop() + 1
            operand_before = True
        elif char in "+-" and not operand_before:
            signs[-1] += 1
            depth += 1
        elif char in "+-*/":  # binary: the signs before its left operand are closed by now
            depth -= signs[-1]
            signs[-1] = 0
            operand_before = False
        else:
            operand_before = True
        deepest = max(deepest, depth)
    return deepest


def _checked(value: Number, expression: str) -> Number:
    # abs() before isfinite: a huge int does not convert to float.
    if not abs(value) < MAX_ABS or not math.isfinite(value):
        raise _refuse(expression, f"a value outside ±{MAX_ABS:.0e} (or not finite)")
    return value


def safe_eval(expression: str, variables: Mapping[str, Number]) -> Number:
    """Value of an arithmetic expression over numeric `variables`; anything else is a UserError."""
    if len(expression) > MAX_CHARS:
        raise _refuse(expression, f"longer than {MAX_CHARS} characters")
    if text_depth(expression) > MAX_DEPTH:
        raise _refuse(expression, f"nested deeper than {MAX_DEPTH} (parentheses and signs)")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise _refuse(expression, "not an arithmetic expression") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise _refuse(expression, f"more than {MAX_NODES} terms")
    if _tree_depth(tree.body) > MAX_DEPTH:
        raise _refuse(expression, f"nested deeper than {MAX_DEPTH}")
    return _walk(tree.body, variables, expression)


def _tree_depth(root: ast.AST) -> int:
    """Depth of the parsed tree, without recursion (a chain a+a+...+a nests one level per +)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _walk(node: ast.AST, variables: Mapping[str, Number], expression: str) -> Number:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _checked(node.value, expression)
    if isinstance(node, ast.Name):
        if node.id not in variables:
            raise UnknownName(node.id, expression)
        return _checked(variables[node.id], expression)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _walk(node.operand, variables, expression)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _walk(node.left, variables, expression)
        right = _walk(node.right, variables, expression)
        if isinstance(node.op, ast.Div) and right == 0:
            raise _refuse(expression, "division by zero")
        return _checked(_BINARY[type(node.op)](left, right), expression)
    # Why a whitelist: anything outside numbers and + - * / is not recipe arithmetic.
    what = type(node).__name__.lower()
    raise _refuse(expression, f"{what} is not allowed (numbers, + - * /, variables only)")
