"""Timing runs on two clocks at once: wall (`perf_counter`) and CPU time.

At 1 thread the CPU clock is `time.thread_time` (onnxruntime runs a session with one intra-op
and one inter-op thread, sequential, on the calling thread); with more threads it is
`time.process_time` (all threads of the process).

Some kernels update a thread's CPU time only at scheduler ticks, whatever resolution
`time.get_clock_info` reports. So the clock's step is taken as the larger of its reported
resolution and the smallest change seen when reading it repeatedly (on Linux this is the cost
of one read, well under a microsecond). When a run is shorter than `MIN_STEPS` steps, one CPU
sample times several consecutive runs (`runs_per_sample`), on both clocks alike, and is divided
by their number, so neither the clock's step nor the cost of reading it is more than 2% of a
sample; p50/p90/p99 are then taken over those means. The wall window lies inside the CPU one
and both hold the same Python loop, so on an idle machine they agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

import numpy as np

from paiexport.bench.stats import CpuKind, LatencyStats

CPU_CLOCKS: dict[CpuKind, str] = {"thread": "thread_time", "process": "process_time"}
MIN_STEPS = 50  # a CPU sample lasts at least this many clock steps (step and read cost <= 2%)
MAX_RUNS_PER_SAMPLE = 10_000
K = TypeVar("K", bound=Hashable)  # what names a callable: a file's label, or (runtime, label)
_PROBE_SECONDS = 0.05  # longest spent looking for the clock's step


def cpu_kind(threads: int) -> CpuKind:
    """Which CPU clock measures a session on `threads` intra-op threads."""
    return "thread" if threads == 1 else "process"


@cache
def clock_step(kind: CpuKind) -> float:
    """Seconds between two distinct readings of the CPU clock, at best (see the module doc)."""
    name = CPU_CLOCKS[kind]
    clock: Callable[[], float] = getattr(time, name)
    steps: list[float] = []
    last, deadline = clock(), time.perf_counter() + _PROBE_SECONDS
    while len(steps) < 20 and time.perf_counter() < deadline:
        now = clock()
        if now != last:
            steps.append(now - last)
            last = now
    seen = min(steps) if steps else _PROBE_SECONDS
    return max(time.get_clock_info(name).resolution, seen)


def runs_per_sample(run_seconds: float, step: float) -> int:
    """Consecutive runs one CPU sample needs to last `MIN_STEPS` clock steps (1 to 10 000)."""
    if run_seconds <= 0:
        return MAX_RUNS_PER_SAMPLE
    return min(MAX_RUNS_PER_SAMPLE, max(1, math.ceil(MIN_STEPS * step / run_seconds)))


@dataclass
class Samples:
    """One file's timings in one setting: per sample, wall and CPU seconds per run."""

    kind: CpuKind
    runs_per_sample: int
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def stats(self, batch: int) -> LatencyStats:
        return LatencyStats.from_times(self.wall, batch, self.cpu, self.kind, self.runs_per_sample)


def _sample(run: Callable[[], object], runs: int, clock: Callable[[], float]) -> tuple[float, float]:
    """Wall and CPU seconds per run of `runs` consecutive runs."""
    cpu_start = clock()
    start = time.perf_counter()
    for _ in range(runs):
        run()
    wall = time.perf_counter() - start
    return wall / runs, (clock() - cpu_start) / runs


def time_interleaved(
    runs: dict[K, Callable[[], object]], warmup: int, iterations: int, kind: CpuKind
) -> dict[K, Samples]:
    """Run each callable in turn (A B A B ...): `warmup` untimed rounds (at least one: it sizes
    the samples), then `iterations` timed samples of each."""
    first: dict[K, list[float]] = {v: [] for v in runs}
    for _ in range(max(warmup, 1)):
        for v, run in runs.items():
            start = time.perf_counter()
            run()
            first[v].append(time.perf_counter() - start)
    step, clock = clock_step(kind), getattr(time, CPU_CLOCKS[kind])
    samples = {v: Samples(kind, runs_per_sample(float(np.median(t)), step)) for v, t in first.items()}
    for _ in range(iterations):
        for v, run in runs.items():
            wall, cpu = _sample(run, samples[v].runs_per_sample, clock)
            samples[v].wall.append(wall)
            samples[v].cpu.append(cpu)
    return samples
