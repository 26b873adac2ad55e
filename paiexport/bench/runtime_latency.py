"""Latency of every file in every runtime, interleaved in one run, and the ratios between them.

Within each setting (threads x batch) every (runtime, file) pair runs in turn, A B A B ...
(`clock.time_interleaved`), so a file's ratio to dense in its own runtime and to dense in
onnxruntime both come from the same moment of the machine. A file a runtime cannot open
(OpenVINO reads no com.microsoft.QGemm, no sparse initializers) is recorded as unreadable
there and left out of its timings; onnxruntime, the reference, raises as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rich.table import Table

from paiexport.bench.clock import cpu_kind, time_interleaved
from paiexport.bench.runtimes import DEFAULT_RUNTIME, Runtime, RuntimeInfo, Session
from paiexport.bench.settings import BenchSettings
from paiexport.bench.stats import BusyCheck, LatencyStats, Speedup, busy_check, labelled, speedup
from paiexport.verify.inputs import plan_inputs, random_feeds, resolve_shapes

Latency = dict[int, dict[int, LatencyStats]]  # batch -> threads -> stats


@dataclass
class RuntimeLatency:
    """runtime -> file -> batch -> threads -> stats; runtime -> file -> why it did not open."""

    stats: dict[str, dict[str, Latency]] = field(default_factory=dict)
    unreadable: dict[str, dict[str, str]] = field(default_factory=dict)
    info: dict[str, RuntimeInfo] = field(default_factory=dict)

    def busy(self) -> BusyCheck:
        """`stats.busy_check` over every runtime's timings (one run, one machine)."""
        flat = {
            f"{label} in {name}": by_b for name, files in self.stats.items() for label, by_b in files.items()
        }
        return busy_check(labelled(flat))

    def to_dict(self, baseline: str) -> dict[str, Any]:
        """`paiexport bench --json` `runtimes`: per runtime its info, what it could not read, and
        each file's stats with its speedups over `baseline` there and in onnxruntime."""
        out: dict[str, Any] = {}
        for name, files in self.stats.items():
            latency = {
                label: {
                    str(b): {str(t): self._entry(name, label, baseline, b, t, s) for t, s in by_t.items()}
                    for b, by_t in by_b.items()
                }
                for label, by_b in files.items()
            }
            info = self.info[name].to_dict() if name in self.info else None
            out[name] = {"info": info, "unreadable": self.unreadable.get(name, {}), "latency": latency}
        return out

    def _entry(self, name: str, label: str, baseline: str, b: int, t: int, s: LatencyStats) -> dict[str, Any]:
        r = self.ratios(name, label, baseline, b, t)
        same = r.same_runtime.value if r.same_runtime else None
        cross = r.vs_default.value if r.vs_default else None
        return {**s.to_dict(), "speedup": same, f"speedup_vs_{DEFAULT_RUNTIME}": cross}

    def ratios(self, runtime: str, label: str, baseline: str, batch: int, threads: int) -> Ratios:
        """`label` in `runtime` against `baseline` in the same runtime and in onnxruntime."""
        other = self.stats.get(runtime, {}).get(label, {}).get(batch, {}).get(threads)
        return Ratios(
            _speedup(self.stats.get(runtime, {}), baseline, batch, threads, other),
            _speedup(self.stats.get(DEFAULT_RUNTIME, {}), baseline, batch, threads, other),
        )


@dataclass(frozen=True)
class Ratios:
    """Speedups of one file in one runtime; None where either side was not measured."""

    same_runtime: Speedup | None  # over the baseline in the same runtime
    vs_default: Speedup | None  # over the baseline in onnxruntime


def _speedup(
    stats: dict[str, Latency], baseline: str, batch: int, threads: int, other: LatencyStats | None
) -> Speedup | None:
    base = stats.get(baseline, {}).get(batch, {}).get(threads)
    return None if base is None or other is None else speedup(base, other)


def open_sessions(
    files: dict[str, Path], runtimes: Sequence[Runtime], threads: int, latency: RuntimeLatency
) -> dict[tuple[str, str], Session]:
    """(runtime, file) -> session; files a runtime other than onnxruntime cannot open go to
    `latency.unreadable` instead."""
    sessions: dict[tuple[str, str], Session] = {}
    for runtime in runtimes:
        for label, path in files.items():
            if label in latency.unreadable.get(runtime.name, {}):
                continue
            try:
                sessions[runtime.name, label] = runtime.open(path, threads)
            except Exception as exc:
                if runtime.name == DEFAULT_RUNTIME:
                    raise
                latency.unreadable.setdefault(runtime.name, {})[label] = runtime.unreadable(exc)
    return sessions


def benchmark_runtimes(
    files: dict[str, Path],
    settings: BenchSettings,
    runtimes: Sequence[Runtime],
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> RuntimeLatency:
    """Median/p90/p99 latency per runtime, file, batch size and thread count (wall and CPU time,
    `bench/clock.py`), every (runtime, file) pair interleaved within each setting."""
    shapes = shapes or {}
    specs = plan_inputs(files, settings.batch_sizes, shapes)
    latency = RuntimeLatency(info={r.name: r.info() for r in runtimes})
    latency.stats = {r.name: {label: {} for label in files} for r in runtimes}
    for n_threads in settings.threads:
        sessions = open_sessions(files, runtimes, n_threads, latency)
        for batch in settings.batch_sizes:
            feeds = {
                label: random_feeds(specs[label], resolve_shapes(specs[label], batch, shapes, str(path)))
                for label, path in files.items()
            }
            runs = {key: partial(s.run, None, feeds[key[1]]) for key, s in sessions.items()}
            samples = time_interleaved(runs, settings.warmup, settings.iterations, cpu_kind(n_threads))
            for (name, label), sample in samples.items():
                latency.stats[name][label].setdefault(batch, {})[n_threads] = sample.stats(batch)
    for name, unreadable in latency.unreadable.items():
        for label in unreadable:
            latency.stats[name].pop(label, None)
    return latency


def runtime_table(latency: RuntimeLatency, baseline: str) -> Table:
    """`paiexport bench --runtime`: every file in every runtime, its speedup over `baseline` in
    the same runtime and in onnxruntime (thread CPU time at 1 thread, wall time at more)."""
    table = Table(
        title=f"latency per runtime (interleaved in one run); speedups over {baseline} in the same "
        f"runtime and in {DEFAULT_RUNTIME}",
        caption="\n".join(_captions(latency)) or None,
    )
    table.add_column("file", no_wrap=True)
    for header in ("runtime", "batch", "threads", "p50 ms", "cpu p50 ms", "speedup", f"vs {DEFAULT_RUNTIME}"):
        table.add_column(header, justify="right")
    for label in latency.stats.get(DEFAULT_RUNTIME, {}):
        for name, files in latency.stats.items():
            if label in latency.unreadable.get(name, {}):
                table.add_row(label, name, "-", "-", "unreadable", "-", "-", "-")
                continue
            for b, by_t in files.get(label, {}).items():
                for t, s in by_t.items():
                    r = latency.ratios(name, label, baseline, b, t)
                    ratios = [
                        f"{x.value:.2f}× ({x.basis})" if x else "-" for x in (r.same_runtime, r.vs_default)
                    ]
                    table.add_row(label, name, str(b), str(t), s.cells()[0], s.cpu_cells()[0], *ratios)
    return table


def _captions(latency: RuntimeLatency) -> list[str]:
    """Each runtime's precision, the files it could not read and why, the busy-machine warning."""
    lines = []
    for info in latency.info.values():
        default = f" (this CPU's default: {info.default_precision})" if info.lossy_default else ""
        lines.append(f"{info.name} {info.version.split('-')[0]} computes in {info.precision}{default}")
    lines += [
        f"{label} unreadable in {name}: {why}"
        for name, files in latency.unreadable.items()
        for label, why in files.items()
    ]
    return [*lines, *([latency.busy().line()] if latency.busy().busy else [])]
