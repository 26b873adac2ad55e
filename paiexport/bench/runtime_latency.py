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

from paiexport.bench.clock import cpu_kind, time_interleaved
from paiexport.bench.runtimes import DEFAULT_RUNTIME, Runtime, RuntimeInfo, Session
from paiexport.bench.settings import BenchSettings
from paiexport.bench.stats import LatencyStats, Speedup, speedup
from paiexport.verify.inputs import plan_inputs, random_feeds, resolve_shapes

Latency = dict[int, dict[int, LatencyStats]]  # batch -> threads -> stats


@dataclass
class RuntimeLatency:
    """runtime -> file -> batch -> threads -> stats; runtime -> file -> why it did not open."""

    stats: dict[str, dict[str, Latency]] = field(default_factory=dict)
    unreadable: dict[str, dict[str, str]] = field(default_factory=dict)
    info: dict[str, RuntimeInfo] = field(default_factory=dict)

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
