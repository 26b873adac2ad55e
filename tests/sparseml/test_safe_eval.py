"""SparseML `eval(...)` is bounded: hostile expressions are refused at once, in one short line.

The bound is the feature, so these tests time the refusal (generously: 2 s for what takes
milliseconds) and measure the message.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.sparseml.safe_eval import safe_eval

MAX_DEPTH = 50  # parentheses and signs (paiexport.sparseml.safe_eval.MAX_DEPTH)
HOSTILE = {
    "unary_100k_deep": "-(" * 100_000 + "1" + ")" * 100_000,
    "parentheses_10k_deep": "(" * 10_000 + "1" + ")" * 10_000,
    "signs_100k": "-" * 100_000 + "1",
    "sum_20kB": "1" + " + 1" * 5_000,
    "import_100kB": "__import__('os').system('touch MARKER')" + " + 1" * 25_000,
    "huge_literal": "9" * 900,
    "float_overflow": "1e300 * 1e300",
    "squarings": "(((((10*10)*(10*10))*((10*10)*(10*10)))*(((10*10)*(10*10))*((10*10)*(10*10)))))",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_expression_refused_fast_in_one_short_line(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a successful os.system would leave MARKER
    expression = HOSTILE[name]
    start = time.perf_counter()
    with pytest.raises(UserError) as caught:
        safe_eval(expression, {})
    assert time.perf_counter() - start < 2.0
    message = str(caught.value)
    assert len(message) < 200 and "\n" not in message
    assert message.startswith("eval(")  # the expression elided, not repeated
    assert not (tmp_path / "MARKER").exists()


def test_depth_bound_counts_parentheses_and_signs():
    assert safe_eval("(" * MAX_DEPTH + "2" + ")" * MAX_DEPTH, {}) == 2
    assert safe_eval("-(" * (MAX_DEPTH // 2) + "2" + ")" * (MAX_DEPTH // 2), {}) == -2  # 25 signs
    with pytest.raises(UserError, match="nested deeper than 50"):
        safe_eval("(" * (MAX_DEPTH + 1) + "2" + ")" * (MAX_DEPTH + 1), {})
    with pytest.raises(UserError, match="nested deeper than 50"):
        safe_eval("-(" * (MAX_DEPTH // 2 + 1) + "2" + ")" * (MAX_DEPTH // 2 + 1), {})


def test_numbers_stay_finite_and_below_the_bound():
    assert safe_eval("epochs * 0.5 + 1", {"epochs": 10}) == 6.0
    with pytest.raises(UserError, match="outside"):
        safe_eval("x * x", {"x": 1e8})  # 1e16: over the bound, though finite
    with pytest.raises(UserError, match="outside"):
        safe_eval("x", {"x": float("inf")})


def _chained_squarings(tmp_path: Path, steps: int) -> Path:
    """A SparseML recipe whose variables square the previous one: 10^(2^steps)."""
    lines = ["x0: 10"] + [f"x{i}: eval(x{i - 1} * x{i - 1})" for i in range(1, steps + 1)]
    path = tmp_path / "squares.yaml"
    path.write_text(
        "\n".join(lines)
        + f"\nmodifiers:\n  - !EpochRangeModifier {{start_epoch: 0.0, end_epoch: eval(x{steps})}}\n"
    )
    return path


def test_chain_of_squarings_through_variables_is_refused_fast(tmp_path):
    """Unbounded ints grow to 10^(2^40): that hung (one bytecode, no signal gets in): a subprocess."""
    path = _chained_squarings(tmp_path, 40)
    script = textwrap.dedent(f"""
        import time
        from paiexport.errors import UserError
        from paiexport.sparseml.load import load_sparseml
        start = time.perf_counter()
        try:
            load_sparseml(__import__("pathlib").Path({str(path)!r}))
        except UserError as exc:
            print("REFUSED", round(time.perf_counter() - start, 3), len(str(exc)), str(exc))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    refused, seconds, length, message = done.stdout.split(" ", 3)
    assert refused == "REFUSED" and float(seconds) < 2.0 and int(length) < 300
    assert "x" in message and "outside" in message


def test_convert_refuses_a_huge_expression_in_one_line(tmp_path):
    expression = "__import__('os').system('touch MARKER')" + " + 1" * 25_000
    path = tmp_path / "r.yaml"
    path.write_text(
        f"modifiers:\n  - !EpochRangeModifier {{start_epoch: 0.0, end_epoch: eval({expression})}}\n"
    )
    start = time.perf_counter()
    done = CliRunner().invoke(app, ["recipes", "convert", str(path)], catch_exceptions=False)
    assert time.perf_counter() - start < 2.0
    assert done.exit_code == 2
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 200 + len(str(path)), lines[0][:300]
    assert "r.yaml" in lines[0] and "end_epoch" in lines[0]


def test_safe_eval_arithmetic_on_variables() -> None:
    assert safe_eval("a + b * 2 - (c / 4)", {"a": 1, "b": 3, "c": 2}) == 6.5
    assert safe_eval("-x + 1.5", {"x": 0.5}) == 1.0


@pytest.mark.parametrize(
    "expression", ["__import__('os')", "x.real", "abs(x)", "x ** 2", "[x]", "x if x else 1", "unknown + 1"]
)
def test_safe_eval_rejects_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(UserError, match=r"^eval\(") as err:
        safe_eval(expression, {"x": 2.0})
    assert "\n" not in str(err.value)
