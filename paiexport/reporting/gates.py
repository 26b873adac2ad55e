"""CI gates on a finished run: typed limits checked against its report.json.

Gates come from the recipe's `gates:` section (recorded in report.json) and from
`paiexport check` options; options win for the same gate. The defaults gate nothing.
Every limit is typed once, here: `--max-latency-ms 64=5.0` becomes `{64: 5.0}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, PositiveFloat, PositiveInt, ValidationError

from paiexport.bench.runtimes import DEFAULT_RUNTIME, check_names
from paiexport.config import StrictModel
from paiexport.errors import UserError
from paiexport.reporting.runtimes import latency_medians, runtime_figures
from paiexport.reporting.schema import RunReport, needed
from paiexport.reporting.speed import Nested
from paiexport.tasks.base import metric_drop
from paiexport.verify.rules import accuracy_drop_points, reaches_sparsity, within_drop_limit


class GatesConfig(StrictModel):
    """Limits a run must meet. Accuracies and sparsity are fractions (0.9 = 90%)."""

    min_accuracy: float | None = Field(
        default=None, ge=0.0, le=1.0, description="every ONNX variant's test accuracy at least this"
    )
    max_accuracy_drop: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        description="every ONNX variant at most this many points (1.0 = one percentage point) below "
        "the PyTorch model's test accuracy; the same unit as validate.max_accuracy_drop",
    )
    min_metric: float | None = Field(
        default=None,
        description="every ONNX variant's primary metric at least this (at most, lower-is-better)",
    )
    max_metric_drop: float | None = Field(
        default=None,
        ge=0.0,
        description="every ONNX variant at most this much worse than PyTorch in the primary metric "
        "(its own unit; points for accuracy), like validate.max_metric_drop",
    )
    max_latency_ms: dict[PositiveInt, PositiveFloat] = Field(
        default_factory=dict, description="batch size -> median ms, for every variant and thread count"
    )
    min_speedup: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description="variant -> speedup over dense, at every batch size and thread count "
        "(report.json speedup_vs_dense: thread CPU time at 1 thread, wall time at more)",
    )
    max_size_mb: dict[str, PositiveFloat] = Field(
        default_factory=dict, description="variant -> file size in MB (10^6 bytes)"
    )
    min_sparsity: float | None = Field(
        default=None, ge=0.0, le=1.0, description="reached sparsity of the prunable weights"
    )

    def is_empty(self) -> bool:
        return self == GatesConfig()

    def merged(self, other: GatesConfig) -> GatesConfig:
        """`other` wins: its scalars replace ours, its dict entries replace ours key by key."""
        data = self.model_dump()
        for key, value in other.model_dump(exclude_defaults=True).items():
            data[key] = {**data[key], **value} if isinstance(value, dict) else value
        return GatesConfig.model_validate(data)


def gates_from_dict(raw: dict[str, Any], source: str) -> GatesConfig:
    try:
        return GatesConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = "unknown gate" if err["type"] == "extra_forbidden" else err["msg"]
        raise UserError(f"{source}: {loc}: {msg}") from None


def parse_pair(text: str, option: str, key_type: Callable[[str], Any]) -> tuple[Any, float]:
    """'64=5.0' -> (64, 5.0); 'sparse=0.5' -> ('sparse', 0.5)."""
    key, sep, value = text.partition("=")
    try:
        if not sep or not key.strip():
            raise ValueError
        return key_type(key.strip()), float(value)
    except ValueError:
        raise UserError(f"{option} {text!r}: expected KEY=NUMBER, e.g. {option} 64=5.0") from None


@dataclass(frozen=True)
class GateResult:
    gate: str  # e.g. "max_latency_ms[64]"
    measured: float
    limit: float
    passed: bool
    where: str  # which variant/setting gave the measured (worst) value
    unit: str  # "%", "pt", "ms", "x" or "MB"

    def line(self) -> str:
        op = "<=" if self.gate.startswith("max") else ">="
        fmt = _FORMATS[self.unit]
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict}  {self.gate:<24} {fmt(self.measured)} {op} {fmt(self.limit)}  ({self.where})"


_FORMATS: dict[str, Callable[[float], str]] = {
    "%": lambda v: f"{v:.2%}",
    "%4": lambda v: f"{v:.4%}",  # sparsity: one weight in 10^5 must show
    "pt": lambda v: f"{v:.2f} pt",
    "ms": lambda v: f"{v:.3f} ms",
    "x": lambda v: f"{v:.2f}×",
    "MB": lambda v: f"{v:.3f} MB",
}


def _variant(table: dict[str, Any], variant: str, what: str) -> Any:
    if variant not in table:
        raise UserError(f"{what}: no variant {variant!r} in the report (have {', '.join(table)})")
    return table[variant]


def _worst(values: dict[str, float], largest: bool) -> tuple[str, float]:
    pick = max if largest else min
    where = pick(values, key=values.__getitem__)
    return where, values[where]


def evaluate_gates(gates: GatesConfig, report: RunReport, runtime: str = DEFAULT_RUNTIME) -> list[GateResult]:
    """One result per gate, measured at its worst variant/setting; a gate the report cannot
    measure (a section it lacks, unknown variant, batch size not benchmarked) is a `UserError`.

    `runtime` (`check --runtime`): the latency and speedup gates read that runtime's figures
    (`runtimes.<name>`: speedups over dense in the same runtime); the others are runtime-free."""
    speed = _Speed.of(report, runtime)
    results = _accuracy_gates(gates, report)
    results += [_latency_gate(speed, batch, limit) for batch, limit in gates.max_latency_ms.items()]
    results += [_speedup_gate(speed, variant, limit) for variant, limit in gates.min_speedup.items()]
    results += [_size_gate(report, variant, limit) for variant, limit in gates.max_size_mb.items()]
    if gates.min_sparsity is not None:
        results.append(sparsity_gate(report, gates.min_sparsity))
    return results


def _accuracy_gates(gates: GatesConfig, report: RunReport) -> list[GateResult]:
    results: list[GateResult] = []
    if gates.min_accuracy is not None:
        where, acc = _worst(_onnx_accuracy(report), largest=False)
        results.append(
            GateResult("min_accuracy", acc, gates.min_accuracy, acc >= gates.min_accuracy, where, "%")
        )
    if gates.max_accuracy_drop is not None:
        torch_acc = needed(report.accuracy, "accuracy").torch
        drops = {v: accuracy_drop_points(torch_acc, a) for v, a in _onnx_accuracy(report).items()}
        where, drop = _worst(drops, largest=True)
        limit = gates.max_accuracy_drop
        passed = within_drop_limit(drop, limit)
        results.append(GateResult("max_accuracy_drop", drop, limit, passed, f"{where} vs torch", "pt"))
    return results + _metric_gates(gates, report)


def _metric_gates(gates: GatesConfig, report: RunReport) -> list[GateResult]:
    """min_metric and max_metric_drop: the primary metric in its direction and unit."""
    results: list[GateResult] = []
    if gates.min_metric is None and gates.max_metric_drop is None:
        return results
    name, higher = report.primary
    onnx = report.onnx_metric()
    if not onnx:
        raise UserError("report has no ONNX metrics")
    if gates.min_metric is not None:
        where, value = _worst(onnx, largest=not higher)
        passed = value >= gates.min_metric if higher else value <= gates.min_metric
        results.append(GateResult("min_metric", value, gates.min_metric, passed, where, name))
    if gates.max_metric_drop is not None:
        drops = {v: metric_drop(report.torch_metric, m, report.drop_rule) for v, m in onnx.items()}
        where, drop = _worst(drops, largest=True)
        passed = within_drop_limit(drop, gates.max_metric_drop)
        unit = "pt" if report.drop_rule.scale == 100 else name
        results.append(
            GateResult("max_metric_drop", drop, gates.max_metric_drop, passed, f"{where} vs torch", unit)
        )
    return results


@dataclass(frozen=True)
class _Speed:
    """The figures the speed gates read: onnxruntime's (top level) or another runtime's."""

    runtime: str
    latency_ms: Nested
    speedup: Nested
    unreadable: dict[str, str]

    @classmethod
    def of(cls, report: RunReport, runtime: str) -> _Speed:
        if runtime == DEFAULT_RUNTIME:
            return cls(runtime, report.latency_ms, report.speedup_vs_dense, {})
        check_names([runtime], "--runtime")
        figures = runtime_figures(report.runtimes, runtime)
        return cls(runtime, latency_medians(figures), figures.speedup_vs_dense, figures.unreadable)

    def where(self, text: str) -> str:
        return text if self.runtime == DEFAULT_RUNTIME else f"{self.runtime}, {text}"

    def variant(self, variant: str, gate: str) -> dict[str, dict[str, float]]:
        if variant in self.unreadable:
            raise UserError(f"{gate}: {variant} is unreadable in {self.runtime} ({self.unreadable[variant]})")
        return _variant(needed(self.speedup, self.section("speedup_vs_dense")), variant, gate)

    def section(self, key: str) -> str:
        """Where `key` is in report.json, for "report has no ..."."""
        if self.runtime == DEFAULT_RUNTIME:
            return key
        return f"runtimes.{self.runtime}.{'latency' if key == 'latency_ms' else key}"


def _latency_gate(speed: _Speed, batch: int, limit: float) -> GateResult:
    latency = needed(speed.latency_ms, speed.section("latency_ms"))
    found = {
        speed.where(f"{v}, {t} thread(s)"): ms
        for v, by_b in latency.items()
        for t, ms in by_b.get(str(batch), {}).items()
    }
    if not found:
        raise UserError(f"max_latency_ms[{batch}]: batch size {batch} was not benchmarked in the report")
    where, ms = _worst(found, largest=True)
    return GateResult(f"max_latency_ms[{batch}]", ms, limit, ms <= limit, where, "ms")


def _speedup_gate(speed: _Speed, variant: str, limit: float) -> GateResult:
    by_b = speed.variant(variant, f"min_speedup[{variant}]")
    found = {speed.where(f"batch {b}, {t} thread(s)"): r for b, by_t in by_b.items() for t, r in by_t.items()}
    where, ratio = _worst(found, largest=False)
    return GateResult(f"min_speedup[{variant}]", ratio, limit, ratio >= limit, where, "x")


def _size_gate(report: RunReport, variant: str, limit: float) -> GateResult:
    mb = _variant(needed(report.size_bytes, "size_bytes"), variant, f"max_size_mb[{variant}]").raw / 1e6
    return GateResult(f"max_size_mb[{variant}]", mb, limit, mb <= limit, "raw file size", "MB")


def _onnx_accuracy(report: RunReport) -> dict[str, float]:
    onnx = needed(report.accuracy, "accuracy").onnx
    if not onnx:
        raise UserError("report has no accuracy.onnx")
    return onnx


def sparsity_gate(report: RunReport, limit: float) -> GateResult:
    """Compared in weights, with `rules.reaches_sparsity`'s tolerance of whole weights."""
    sparsity = needed(report.sparsity, "sparsity")
    reached = sparsity.reached
    total = sum(layer.numel for layer in sparsity.per_layer.values())
    if total <= 0:  # a report without weight counts: compare the fractions
        return GateResult("min_sparsity", reached, limit, reached >= limit, "prunable weights", "%4")
    zeros = round(reached * total)
    passed = reaches_sparsity(zeros, total, limit)
    return GateResult("min_sparsity", reached, limit, passed, f"{zeros} of {total} zero", "%4")


def load_report(path: Path) -> RunReport:
    """A run folder (its report.json) or a report.json file."""
    return RunReport.read(path)


def recipe_gates(report: RunReport, source: str) -> GatesConfig:
    """The `gates:` section recorded with the run's recipe (none: gate nothing)."""
    raw = (report.recipe or {}).get("gates") or {}
    return gates_from_dict(raw, f"{source}: recipe.gates")
