"""report.json `runtimes`: every file in each runtime besides onnxruntime, typed, and its readers.

`runtimes.<name>` holds what ran the files (`info`: version, device, the device's default float
precision and the one used), each file's `latency` there, `speedup_vs_dense` (over model.onnx in
the same runtime) and `speedup_vs_dense_onnxruntime` (over model.onnx in onnxruntime, measured
in the same interleaved run), and `unreadable` (file -> why the runtime could not open it).
Each file's check there is `validation.<variant>.runtimes.<name>` (`quality.RuntimeCheck`).
onnxruntime's own figures stay where they always were (`latency`, `speedup_vs_dense`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field

from paiexport.bench.runtime_checks import RuntimeOutcome
from paiexport.bench.runtimes import DEFAULT_RUNTIME
from paiexport.errors import UserError
from paiexport.reporting.quality import Section
from paiexport.reporting.speed import Nested, Stats
from paiexport.variant import Variant

if TYPE_CHECKING:
    from paiexport.reporting.schema import RunReport


class RuntimeDescription(Section):
    """What ran the files: `precision` is the one used, `default_precision` the device's own."""

    name: str
    version: str
    device: str = ""
    default_precision: str
    precision: str
    lossy_default: bool


class RuntimeFigures(Section):
    info: RuntimeDescription
    latency: dict[str, dict[str, dict[str, Stats]]] = Field(default_factory=dict)
    speedup_vs_dense: Nested = Field(default_factory=dict)  # over model.onnx in the same runtime
    speedup_vs_dense_onnxruntime: Nested = Field(default_factory=dict)  # over model.onnx in onnxruntime
    unreadable: dict[str, str] = Field(default_factory=dict)


def _ratio_tables(outcome: RuntimeOutcome, runtime: str, baseline: str) -> tuple[Nested, Nested]:
    same: Nested = {}
    cross: Nested = {}
    for v, by_b in outcome.latency.stats.get(runtime, {}).items():
        for b, by_t in by_b.items():
            for t in by_t:
                ratios = outcome.latency.ratios(runtime, v, baseline, b, t)
                for table, r in ((same, ratios.same_runtime), (cross, ratios.vs_default)):
                    if r is not None:
                        table.setdefault(v, {}).setdefault(str(b), {})[str(t)] = r.value
    return same, cross


def runtime_sections(outcome: RuntimeOutcome, baseline: str = Variant.dense) -> dict[str, Any]:
    """report.json `runtimes` from what the run measured (every runtime but onnxruntime)."""
    sections = {}
    for name in outcome.runtimes:
        stats = outcome.latency.stats.get(name, {})
        same, cross = _ratio_tables(outcome, name, baseline)
        sections[name] = {
            "info": outcome.info[name].to_dict(),
            "latency": {
                v: {str(b): {str(t): s.to_dict() for t, s in by_t.items()} for b, by_t in by_b.items()}
                for v, by_b in stats.items()
            },
            "speedup_vs_dense": same,
            "speedup_vs_dense_onnxruntime": cross,
            "unreadable": dict(outcome.latency.unreadable.get(name, {})),
        }
    return sections


def runtime_figures(runtimes: dict[str, RuntimeFigures] | None, runtime: str) -> RuntimeFigures:
    """One runtime's figures for a reader that needs them (the gates); a `UserError` otherwise."""
    if runtimes is None or runtime not in runtimes:
        raise UserError(f"report has no runtimes.{runtime} (the run's bench.runtimes did not include it)")
    return runtimes[runtime]


def latency_medians(figures: RuntimeFigures) -> Nested:
    """variant -> batch -> threads -> wall median (ms), like report.json `latency_ms`."""
    return {
        v: {b: {t: s.median_ms for t, s in by_t.items()} for b, by_t in by_b.items()}
        for v, by_b in figures.latency.items()
    }


def runtime_note(runtimes: dict[str, RuntimeFigures]) -> str:
    """What the runtime table shows, and each runtime's precision."""
    about = "; ".join(
        f"{name} {f.info.version.split('-')[0]} computes in {f.info.precision}"
        + (f" (this CPU's default: {f.info.default_precision})" if f.info.lossy_default else "")
        for name, f in runtimes.items()
    )
    return (
        "Every file timed in each runtime, interleaved in the same run (median wall ms); ratios "
        f"are speedups over model.onnx in the same runtime, then over model.onnx in {DEFAULT_RUNTIME}. "
        + about
        + "."
    )


def _cell(ms: float | None, same: float | None, cross: float | None, unreadable: bool) -> str:
    if unreadable:
        return "unreadable"
    if ms is None:
        return "-"
    ratios = " / ".join(f"{r:.2f}×" for r in (same, cross) if r is not None)
    return f"{ms:.3f} ms" + (f" ({ratios})" if ratios else "")


def runtime_rows(
    report: RunReport, metric: Callable[[float | None], str], metric_header: str
) -> tuple[list[str], list[list[str]]]:
    """One row per (variant, runtime): latency per setting with its ratios, the primary metric
    (`metric` formats it) and the file's verdict in that runtime; onnxruntime's rows first."""
    runtimes = report.runtimes or {}
    settings = sorted(
        {(b, t) for by_b in report.latency_ms.values() for b, by_t in by_b.items() for t in by_t},
        key=lambda s: (int(s[0]), int(s[1])),
    )
    headers = ["variant", "runtime", *(f"b{b} t{t}" for b, t in settings), metric_header, "verdict"]
    rows = []
    for v, check in report.validation.items():
        base = report.latency_ms.get(v, {})
        ratio = report.speedup_vs_dense.get(v, {})
        cells = [_cell(base.get(b, {}).get(t), ratio.get(b, {}).get(t), None, False) for b, t in settings]
        verdict = "pass" if check.passed and check.deployable else check.reason
        rows.append([v, DEFAULT_RUNTIME, *cells, metric(check.metric), verdict])
        for name, figures in runtimes.items():
            ms = latency_medians(figures).get(v, {})
            same, cross = figures.speedup_vs_dense.get(v, {}), figures.speedup_vs_dense_onnxruntime.get(v, {})
            unreadable = v in figures.unreadable
            cells = [
                _cell(ms.get(b, {}).get(t), same.get(b, {}).get(t), cross.get(b, {}).get(t), unreadable)
                for b, t in settings
            ]
            there = (check.runtimes or {}).get(name)
            verdict = "-" if there is None else ("pass" if there.deployable else there.reason)
            rows.append([v, name, *cells, metric(there.metric if there else None), verdict])
    return headers, rows
