"""CPU latency of ONNX files in onnxruntime, interleaved so ratios share one moment."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from paiexport.bench.files import MemoryStats, file_size, session_creation_ms, session_memory
from paiexport.bench.settings import BenchSettings, FileBenchSettings
from paiexport.errors import UserError
from paiexport.verify.inputs import plan_inputs, random_feeds, resolve_shapes
from paiexport.verify.validate import make_session


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # samples per second at the median

    @classmethod
    def from_times(cls, seconds: list[float], batch: int) -> LatencyStats:
        ms = np.asarray(seconds) * 1e3
        median = float(np.median(ms))
        return cls(
            median,
            float(np.percentile(ms, 90)),
            float(np.percentile(ms, 99)),
            batch / (median / 1e3) if median > 0 else float("inf"),
        )

    def cells(self) -> list[str]:
        """p50, p90, p99 (ms) and samples/s, as the bench table prints them."""
        return [
            f"{self.median_ms:.3f}",
            f"{self.p90_ms:.3f}",
            f"{self.p99_ms:.3f}",
            f"{self.throughput:,.0f}",
        ]


def benchmark_files(
    files: dict[str, Path], settings: BenchSettings, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, dict[int, dict[int, LatencyStats]]]:
    """Median/p90/p99 latency per file, batch size and thread count.

    Files are run in turn (A B A B ...) within each setting, so each file's ratio
    to another comes from the same moment of the machine.
    """
    shapes, batch_sizes, warmup, iterations = (
        shapes or {},
        settings.batch_sizes,
        settings.warmup,
        settings.iterations,
    )
    specs = plan_inputs(files, batch_sizes, shapes)
    results: dict[str, dict[int, dict[int, LatencyStats]]] = {v: {} for v in files}
    for n_threads in settings.threads:
        sessions = {v: make_session(p, n_threads) for v, p in files.items()}
        for batch in batch_sizes:
            feeds = {
                v: random_feeds(specs[v], resolve_shapes(specs[v], batch, shapes, str(p)))
                for v, p in files.items()
            }
            times: dict[str, list[float]] = {v: [] for v in files}
            for i in range(warmup + iterations):
                for v, session in sessions.items():
                    start = time.perf_counter()
                    session.run(None, feeds[v])
                    if i >= warmup:
                        times[v].append(time.perf_counter() - start)
            for v in files:
                results[v].setdefault(batch, {})[n_threads] = LatencyStats.from_times(times[v], batch)
    return results


@dataclass
class FileBench:
    path: Path
    size_bytes: dict[str, int]
    session_create_ms: float
    memory: MemoryStats | None
    latency: dict[int, dict[int, LatencyStats]]


@dataclass
class BenchResult:
    """Everything `paiexport bench` measured; ratios are to `baseline`, from the same run."""

    baseline: str
    settings: FileBenchSettings
    files: dict[str, FileBench] = field(default_factory=dict)

    def speedup(self, label: str, batch: int, threads: int) -> float:
        base = self.files[self.baseline].latency[batch][threads].median_ms
        return base / self.files[label].latency[batch][threads].median_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "settings": self.settings.model_dump(),
            "files": {label: self._file_dict(label, f) for label, f in self.files.items()},
        }

    def _file_dict(self, label: str, f: FileBench) -> dict[str, Any]:
        base = self.files[self.baseline]
        memory = None if f.memory is None else {**asdict(f.memory), "method": f.memory.method}
        latency = {
            str(b): {str(t): {**asdict(s), "speedup": self.speedup(label, b, t)} for t, s in by_t.items()}
            for b, by_t in f.latency.items()
        }
        return {
            "path": str(f.path),
            "size_bytes": f.size_bytes,
            "size_ratio": {k: f.size_bytes[k] / base.size_bytes[k] for k in f.size_bytes},
            "session_create_ms": f.session_create_ms,
            "session_create_ratio": f.session_create_ms / base.session_create_ms,
            "memory": memory,
            "latency": latency,
        }


def bench(files: dict[str, Path], baseline: str, settings: FileBenchSettings) -> BenchResult:
    """Latency (interleaved), session creation (interleaved), memory (one process per file), size."""
    stats = benchmark_files(files, settings, settings.shapes)
    create = session_creation_ms(files, min(settings.threads), settings.session_repeats)
    result = BenchResult(baseline, settings)
    for label, path in files.items():
        memory = (
            session_memory(path, min(settings.threads), max(settings.batch_sizes), settings.shapes)
            if settings.memory
            else None
        )
        result.files[label] = FileBench(path, file_size(path), create[label], memory, stats[label])
    return result


def bench_inputs(models: list[Path], baseline: Path | None) -> tuple[dict[str, Path], str]:
    """Label -> path for every file (baseline first), and the baseline's label.

    Without `--baseline` the first file is the baseline. Bad files are a `UserError`.
    """
    paths = ([baseline] if baseline is not None else []) + [m for m in models if m != baseline]
    # Short labels (file names) unless two files share a name.
    short = len({p.name for p in paths}) == len(paths)
    files: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise UserError(f"ONNX file not found: {path}")
        try:
            make_session(path)  # what bench will do; onnx.load alone accepts files ORT rejects
        except Exception:
            raise UserError(f"{path}: not an ONNX model onnxruntime can load") from None
        files[path.name if short else str(path)] = path
    return files, next(iter(files))


def _file_column(table: Table, result: BenchResult) -> None:
    """File labels are never cut short: the numeric columns wrap first."""
    table.add_column("file", no_wrap=True, min_width=max(len(label) for label in result.files))


def bench_table(result: BenchResult) -> Table:
    table = Table(title=f"onnxruntime CPU latency; ratios are speedups over {result.baseline} (same run)")
    _file_column(table, result)
    for header in ("batch", "threads", "p50 ms", "p90 ms", "p99 ms", "samples/s", "speedup"):
        table.add_column(header, justify="right")
    for label, f in result.files.items():
        for b, by_t in f.latency.items():
            for t, s in by_t.items():
                speedup = f"{result.speedup(label, b, t):.2f}×"
                table.add_row(label, str(b), str(t), *s.cells(), speedup)
    return table


def file_table(result: BenchResult) -> Table:
    table = Table(title="files")
    _file_column(table, result)
    for header in ("size", "gzip", "session create", "peak RSS (session)"):
        table.add_column(header, justify="right")
    base = result.files[result.baseline]
    for label, f in result.files.items():
        ratio = f.size_bytes["raw"] / base.size_bytes["raw"]
        memory = (
            "-" if f.memory is None else f"{f.memory.peak_rss_mb:.1f} MB ({f.memory.session_peak_mb:.1f} MB)"
        )
        size = f"{f.size_bytes['raw'] / 1024:.1f} KiB ({ratio:.2f}×)"
        gz = f"{f.size_bytes['gzip'] / 1024:.1f} KiB"
        table.add_row(label, size, gz, f"{f.session_create_ms:.1f} ms", memory)
    return table


def parse_positive_ints(text: str, option: str) -> list[int]:
    """'1,8,64' -> [1, 8, 64]; anything else is a `UserError` naming the option."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(
            f"{option} {text!r}: expected comma-separated positive integers, e.g. 1,8,64"
        ) from None
    if not values or any(v < 1 for v in values):
        raise UserError(f"{option} {text!r}: expected comma-separated positive integers, e.g. 1,8,64")
    return list(dict.fromkeys(values))
