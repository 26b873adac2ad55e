"""CPU latency of ONNX files in onnxruntime, interleaved so ratios share one moment."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from rich.table import Table

from paiexport.errors import UserError
from paiexport.verify.inputs import file_inputs, plan_inputs, random_feeds, resolve_shapes
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


def file_size(path: Path) -> dict[str, int]:
    """Bytes on disk (with external data, if any), and gzip-compressed."""
    files = [path, *_external_data_files(path)]
    blob = b"".join(p.read_bytes() for p in files)
    return {"raw": len(blob), "gzip": len(gzip.compress(blob, compresslevel=6, mtime=0))}


def _external_data_files(path: Path) -> list[Path]:
    model = onnx.load(str(path), load_external_data=False)
    locations = {
        entry.value
        for tensor in model.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path.parent / loc for loc in sorted(locations)]


def benchmark_files(
    files: dict[str, Path],
    *,
    batch_sizes: list[int],
    threads: list[int],
    warmup: int,
    iterations: int,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> dict[str, dict[int, dict[int, LatencyStats]]]:
    """Median/p90/p99 latency per file, batch size and thread count.

    Files are run in turn (A B A B ...) within each setting, so each file's ratio
    to another comes from the same moment of the machine.
    """
    shapes = shapes or {}
    specs = plan_inputs(files, batch_sizes, shapes)
    results: dict[str, dict[int, dict[int, LatencyStats]]] = {v: {} for v in files}
    for n_threads in threads:
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


# --- `paiexport bench`: several files, session creation time, peak memory, ratios -------------

SESSION_REPEATS = 5

# Runs in a fresh interpreter per file so no other session, no torch and no allocator cache
# shares the process: VmHWM (peak RSS) after loading the session and running it, minus the
# RSS just before loading, is the memory the session itself needed at its peak.
_MEMORY_PROBE = r"""
import json, sys
import numpy as np
import onnxruntime as ort

def status(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # KiB
    except OSError:
        pass
    # No /proc (macOS): the peak so far stands in for both; ru_maxrss is in bytes there.
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak

path, threads, names, arrays = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
with np.load(arrays) as stored:
    feeds = {name: stored[f"arr_{i}"] for i, name in enumerate(names)}
before = status("VmRSS")
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.log_severity_level = 3
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
for _ in range(3):
    session.run(None, feeds)
print(json.dumps({"rss_before_kib": before, "peak_rss_kib": status("VmHWM")}))
"""


@dataclass(frozen=True)
class MemoryStats:
    """Peak resident memory of a process that loads one file and runs it (largest batch)."""

    peak_rss_mb: float  # whole process: Python + numpy + onnxruntime + the session
    session_peak_mb: float  # peak RSS minus RSS just before the session was created

    @property
    def method(self) -> str:
        return "fresh subprocess per file; VmHWM after load + 3 runs minus VmRSS before load"


def session_memory(
    path: Path, threads: int, batch: int, shapes: dict[str, tuple[int, ...]] | None = None
) -> MemoryStats:
    """Measure in a fresh interpreter (see `_MEMORY_PROBE`) so sessions do not share a heap.

    The inputs are made here (the one place that knows how) and handed over as an .npz file.
    """
    specs = file_inputs(path)
    feeds = random_feeds(specs, resolve_shapes(specs, batch, shapes or {}, str(path)))
    with tempfile.TemporaryDirectory() as tmp:
        arrays = Path(tmp) / "feeds.npz"
        np.savez(arrays, *feeds.values())
        names = json.dumps(list(feeds))
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(path), str(threads), names, str(arrays)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory probe failed for {path}: {last}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    peak, before = found["peak_rss_kib"] / 1024, found["rss_before_kib"] / 1024
    return MemoryStats(round(peak, 2), round(peak - before, 2))


def session_creation_ms(
    files: dict[str, Path], threads: int, repeats: int = SESSION_REPEATS
) -> dict[str, float]:
    """Median wall time of `InferenceSession(...)`, files created in turn (A B A B ...)."""
    times: dict[str, list[float]] = {v: [] for v in files}
    for _ in range(repeats):
        for v, p in files.items():
            start = time.perf_counter()
            make_session(p, threads)
            times[v].append((time.perf_counter() - start) * 1e3)
    return {v: float(np.median(t)) for v, t in times.items()}


@dataclass(frozen=True)
class BenchSettings:
    batch_sizes: list[int]
    threads: list[int]
    warmup: int = 10
    iterations: int = 100
    session_repeats: int = SESSION_REPEATS
    memory: bool = True
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # --shape NAME=DIMS


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
    settings: BenchSettings
    files: dict[str, FileBench] = field(default_factory=dict)

    def speedup(self, label: str, batch: int, threads: int) -> float:
        base = self.files[self.baseline].latency[batch][threads].median_ms
        return base / self.files[label].latency[batch][threads].median_ms

    def to_dict(self) -> dict[str, Any]:
        base = self.files[self.baseline]
        return {
            "baseline": self.baseline,
            "settings": {**asdict(self.settings)},
            "files": {
                label: {
                    "path": str(f.path),
                    "size_bytes": f.size_bytes,
                    "size_ratio": {k: f.size_bytes[k] / base.size_bytes[k] for k in f.size_bytes},
                    "session_create_ms": f.session_create_ms,
                    "session_create_ratio": f.session_create_ms / base.session_create_ms,
                    "memory": None if f.memory is None
                    else {**asdict(f.memory), "method": f.memory.method},
                    "latency": {
                        str(b): {
                            str(t): {**asdict(s), "speedup": self.speedup(label, b, t)}
                            for t, s in by_t.items()
                        }
                        for b, by_t in f.latency.items()
                    },
                }
                for label, f in self.files.items()
            },
        }  # fmt: skip


def bench(files: dict[str, Path], baseline: str, settings: BenchSettings) -> BenchResult:
    """Latency (interleaved), session creation (interleaved), memory (one process per file), size."""
    stats = benchmark_files(
        files,
        batch_sizes=settings.batch_sizes,
        threads=settings.threads,
        warmup=settings.warmup,
        iterations=settings.iterations,
        shapes=settings.shapes,
    )
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
                table.add_row(label, str(b), str(t), f"{s.median_ms:.3f}", f"{s.p90_ms:.3f}",
                              f"{s.p99_ms:.3f}", f"{s.throughput:,.0f}",
                              f"{result.speedup(label, b, t):.2f}×")  # fmt: skip
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
