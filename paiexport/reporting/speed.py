"""report.json's speed sections, typed: latency (wall and CPU time), speedups over dense, `busy`.

`speedup_vs_dense` compares thread CPU time at 1 thread and wall time at more threads
(`paiexport.bench.stats.speedup`); `speedup_vs_dense_wall` and `speedup_vs_dense_cpu` hold both
ratios. `busy` says the wall and thread CPU medians disagreed by more than 15% somewhere, so
the wall-clock figures of the run are unreliable. Reports written before these keys lack them.
`latency_by_seq_len` (`bench.seq_lens`) holds the same rows per sequence length.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from rich.table import Table

from paiexport.bench.stats import BUSY_WARNING, BusyCheck, LatencyStats, busy_check, labelled, speedup

Nested = dict[str, dict[str, dict[str, float]]]  # variant -> batch -> threads -> value
Basis = Literal["cpu", "wall"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stats(_Section):
    """One `latency` entry: wall-clock figures, and CPU-time ones where they were measured."""

    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float
    cpu_median_ms: float | None = None
    cpu_p90_ms: float | None = None
    cpu_p99_ms: float | None = None
    cpu_kind: Literal["thread", "process"] | None = None
    runs_per_sample: int | None = None


class LatencyRow(_Section):
    variant: str
    batch: int
    threads: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float
    speedup: float | None  # None: no dense file was benchmarked in the run
    speedup_wall: float | None = None
    speedup_cpu: float | None = None
    speedup_basis: Basis | None = None
    cpu_median_ms: float | None = None
    cpu_p90_ms: float | None = None
    cpu_p99_ms: float | None = None
    cpu_kind: Literal["thread", "process"] | None = None
    runs_per_sample: int | None = None


class SeqLatencyRow(LatencyRow):
    """One `latency_by_seq_len` row: a `LatencyRow` at one sequence length."""

    seq_len: int


class WallCpuRatio(_Section):
    """The wall / thread CPU median furthest from 1 in the run, and where it was measured."""

    worst: float | None = None
    where: str | None = None
    tolerance: float


def _ratio_table(
    stats: dict[str, dict[int, dict[int, LatencyStats]]], base: dict[int, dict[int, LatencyStats]], part: str
) -> Nested:
    """variant -> "batch" -> "threads" -> one part of the speedup over `base` (None left out)."""
    out: Nested = {}
    for v, by_b in stats.items():
        for b, by_t in by_b.items():
            for t, s in by_t.items():
                ratio = getattr(speedup(base[b][t], s), part)
                if ratio is not None:
                    out.setdefault(v, {}).setdefault(str(b), {})[str(t)] = ratio
    return out


def speed_sections(stats: dict[str, dict[int, dict[int, LatencyStats]]], baseline: str) -> dict[str, Any]:
    """The speedup tables (on the basis, wall, CPU; {} without `baseline`), `busy` and
    `wall_cpu_ratio`."""
    base = stats.get(baseline, {})
    tables = {
        f"speedup_vs_dense{suffix}": _ratio_table(stats, base, part) if base else {}
        for suffix, part in (("", "value"), ("_wall", "wall"), ("_cpu", "cpu"))
    }
    return {**tables, **busy_check(labelled(stats)).to_dict()}


def latency_rows(
    latency: dict[str, dict[str, dict[str, Stats]]], value: Nested, wall: Nested, cpu: Nested
) -> list[LatencyRow]:
    """`latency` and the speedup tables as one row per (variant, batch, threads)."""
    rows = []
    for v, by_b in latency.items():
        for b, by_t in by_b.items():
            for t, s in by_t.items():
                ratios = [table.get(v, {}).get(b, {}).get(t) for table in (value, wall, cpu)]
                basis: Basis | None = None if ratios[1] is None else "wall"  # None: an older report
                if ratios[2] is not None and s.cpu_kind == "thread":
                    basis = "cpu"
                named = dict(zip(("speedup", "speedup_wall", "speedup_cpu"), ratios, strict=True))
                where = {"variant": v, "batch": int(b), "threads": int(t)}
                rows.append(LatencyRow(**where, **s.model_dump(), **named, speedup_basis=basis))
    return rows


def latency_note(cpu_based: bool) -> str:
    """What the latency cells of report.md/html show."""
    note = (
        "Latency is the median wall time in onnxruntime on CPU (b = batch size, t = threads); "
        "ratios are speedups over model.onnx measured in the same run"
    )
    if not cpu_based:
        return note + "."
    return note + (
        ", on thread CPU time at 1 thread (it leaves out the time a busy machine made the "
        "run wait) and on wall time at more threads."
    )


def busy_line(busy: bool | None, ratio: WallCpuRatio | None) -> str:
    """The busy-machine warning of a report ("" when the run was not busy or did not say)."""
    if not busy:
        return ""
    if ratio is None or ratio.worst is None:  # a report edited by hand: the flag alone
        return BUSY_WARNING
    return BusyCheck(True, ratio.worst, ratio.where or "-").line()


def seq_latency_rows(
    by_seq: dict[int, dict[str, dict[int, dict[int, LatencyStats]]]], baseline: str
) -> list[SeqLatencyRow]:
    """report.json `latency_by_seq_len`: per sequence length, every file's rows with speedups over
    `baseline` at that length."""
    rows = []
    for length, stats in by_seq.items():
        full = {
            v: {str(b): {str(t): Stats(**s.to_dict()) for t, s in by_t.items()} for b, by_t in by_b.items()}
            for v, by_b in stats.items()
        }
        tables = speed_sections(stats, baseline)
        parts = [tables[f"speedup_vs_dense{suffix}"] for suffix in ("", "_wall", "_cpu")]
        rows += [SeqLatencyRow(seq_len=length, **r.model_dump()) for r in latency_rows(full, *parts)]
    return rows


def seq_latency_table(rows: list[SeqLatencyRow]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of report.md's latency per sequence length."""
    headers = ["variant", "seq len", "batch", "threads", "p50 ms", "cpu p50 ms", "speedup"]
    body = [
        [
            r.variant,
            str(r.seq_len),
            str(r.batch),
            str(r.threads),
            f"{r.median_ms:.3f}",
            "-" if r.cpu_median_ms is None else f"{r.cpu_median_ms:.3f}",
            "-"
            if r.speedup is None
            else f"{r.speedup:.2f}×" + (f" ({r.speedup_basis})" if r.speedup_basis else ""),
        ]
        for r in rows
    ]
    return headers, body


def seq_table(rows: list[SeqLatencyRow], baseline: str) -> Table:
    """The latency per sequence length, speedups over `baseline` at each length."""
    headers, body = seq_latency_table(rows)
    table = Table(title=f"Latency per sequence length (speedup vs {baseline} at that length)")
    for header in headers:
        table.add_column(header.replace("variant", "file"))
    for row in body:
        table.add_row(*row)
    return table
