"""Latency statistics (wall and CPU time), same-run speedups, and the busy-machine rule.

Wall-clock medians lie on a busy machine: a longer run is preempted more often, so the slow
file's median inflates more than the fast one's. A single-threaded onnxruntime session runs on
the calling thread, so that thread's CPU time (`time.thread_time`) leaves preemption out: it
is the basis of speedups at 1 thread. A multi-threaded session's CPU time is the process's
(`time.process_time`, every thread, thread-pool spinning included): speedups there stay on
wall time and both are reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

CpuKind = Literal["thread", "process"]
BUSY_TOLERANCE = 0.15  # wall and thread CPU medians further apart than this: the machine was busy
BUSY_WARNING = "machine busy: wall-clock figures unreliable"


def _percentiles(seconds: list[float]) -> tuple[float, float, float]:
    ms = np.asarray(seconds, dtype=float) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90)), float(np.percentile(ms, 99))


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock figures (the public keys) and, when measured, CPU-time figures of one run."""

    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # samples per second at the (wall) median
    cpu_median_ms: float | None = None
    cpu_p90_ms: float | None = None
    cpu_p99_ms: float | None = None
    cpu_kind: CpuKind | None = None  # "thread": time.thread_time, "process": time.process_time
    runs_per_sample: int | None = None  # consecutive runs per sample (short runs, coarse clocks)

    @classmethod
    def from_times(
        cls,
        seconds: list[float],
        batch: int,
        cpu_seconds: list[float] | None = None,
        cpu_kind: CpuKind = "thread",
        runs_per_sample: int = 1,
    ) -> LatencyStats:
        """Seconds per run of each sample (a sample's time / its `runs_per_sample` runs)."""
        median, p90, p99 = _percentiles(seconds)
        throughput = batch / (median / 1e3) if median > 0 else float("inf")
        if cpu_seconds is None:
            return cls(median, p90, p99, throughput)
        cpu = _percentiles(cpu_seconds)
        return cls(median, p90, p99, throughput, *cpu, cpu_kind, runs_per_sample)

    @property
    def basis(self) -> Literal["cpu", "wall"]:
        """What a speedup compares: thread CPU time where it was measured, else wall time."""
        return "cpu" if self.cpu_kind == "thread" and (self.cpu_median_ms or 0) > 0 else "wall"

    @property
    def basis_ms(self) -> float:
        """The median a speedup or the deploy choice compares (see `basis`)."""
        return self.cpu_median_ms if self.basis == "cpu" and self.cpu_median_ms else self.median_ms

    def to_dict(self) -> dict[str, Any]:
        """The figures measured: the CPU keys only when CPU time was recorded."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def cells(self) -> list[str]:
        """p50, p90, p99 (ms) and samples/s, as the bench table prints them."""
        return [
            f"{self.median_ms:.3f}",
            f"{self.p90_ms:.3f}",
            f"{self.p99_ms:.3f}",
            f"{self.throughput:,.0f}",
        ]

    def cpu_cells(self) -> list[str]:
        """CPU p50 and p90 (ms), "-" when not measured."""
        if self.cpu_median_ms is None or self.cpu_p90_ms is None:
            return ["-", "-"]
        return [f"{self.cpu_median_ms:.3f}", f"{self.cpu_p90_ms:.3f}"]


@dataclass(frozen=True)
class Speedup:
    """`base` median over `other` median: on `basis` (the figure ratios use), wall and CPU."""

    value: float
    wall: float
    cpu: float | None
    basis: Literal["cpu", "wall"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "speedup": self.value,
            "speedup_wall": self.wall,
            "speedup_cpu": self.cpu,
            "basis": self.basis,
        }


def speedup(base: LatencyStats, other: LatencyStats) -> Speedup:
    """Thread CPU time when both have it (1 thread), wall time otherwise; both reported."""
    wall = base.median_ms / other.median_ms
    cpu = None
    if base.cpu_median_ms is not None and other.cpu_median_ms:
        cpu = base.cpu_median_ms / other.cpu_median_ms
    if cpu is not None and base.basis == other.basis == "cpu":
        return Speedup(cpu, wall, cpu, "cpu")
    return Speedup(wall, wall, cpu, "wall")


@dataclass(frozen=True)
class BusyCheck:
    """Whether wall and thread CPU medians disagreed by more than `BUSY_TOLERANCE` anywhere."""

    busy: bool
    worst_ratio: float | None = None  # wall median / thread CPU median furthest from 1
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON keys: `busy` and `wall_cpu_ratio` {worst, where, tolerance}."""
        worst = {"worst": self.worst_ratio, "where": self.where, "tolerance": BUSY_TOLERANCE}
        return {"busy": self.busy, "wall_cpu_ratio": worst}

    def line(self) -> str:
        """The warning ("" when not busy)."""
        if not self.busy:
            return ""
        return (
            f"{BUSY_WARNING} (wall/CPU median {self.worst_ratio:.2f}× at {self.where}); "
            "speedups at 1 thread use thread CPU time"
        )


def busy_check(stats: Mapping[str, LatencyStats]) -> BusyCheck:
    """The wall/CPU median ratio furthest from 1 among single-threaded stats (labelled by where
    they were measured); busy when it is more than `BUSY_TOLERANCE` away from 1."""
    ratios = {
        where: s.median_ms / s.cpu_median_ms
        for where, s in stats.items()
        if s.cpu_kind == "thread" and s.cpu_median_ms
    }
    if not ratios:
        return BusyCheck(False)
    where = max(ratios, key=lambda w: abs(ratios[w] - 1.0))
    return BusyCheck(abs(ratios[where] - 1.0) > BUSY_TOLERANCE, ratios[where], where)


def labelled(stats: Mapping[str, Mapping[int, Mapping[int, LatencyStats]]]) -> dict[str, LatencyStats]:
    """file -> batch -> threads -> stats, flat: "compact, batch 1, 1 thread(s)" -> stats."""
    return {
        f"{label}, batch {b}, {t} thread(s)": s
        for label, by_b in stats.items()
        for b, by_t in by_b.items()
        for t, s in by_t.items()
    }
