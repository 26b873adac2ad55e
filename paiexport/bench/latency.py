"""CPU latency of ONNX files in onnxruntime, interleaved so ratios share one moment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from paiexport.bench.files import MemoryStats, file_size, session_creation_ms, session_memory
from paiexport.bench.runtime_latency import RuntimeLatency, benchmark_runtimes
from paiexport.bench.runtimes import OnnxRuntime, Runtime
from paiexport.bench.settings import BenchSettings, FileBenchSettings
from paiexport.bench.stats import BusyCheck, LatencyStats, Speedup, busy_check, labelled, speedup
from paiexport.errors import UserError
from paiexport.verify.validate import make_session


def benchmark_files(
    files: dict[str, Path], settings: BenchSettings, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, dict[int, dict[int, LatencyStats]]]:
    """Median/p90/p99 latency in onnxruntime per file, batch size and thread count, in wall and
    CPU time (paiexport/bench/clock.py: thread CPU time at 1 thread, process CPU time at more).

    Files are run in turn (A B A B ...) within each setting, so each file's ratio
    to another comes from the same moment of the machine (`runtime_latency.benchmark_runtimes`).
    """
    return benchmark_runtimes(files, settings, [OnnxRuntime()], shapes).stats[OnnxRuntime.name]


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
    runtimes: RuntimeLatency | None = None  # --runtime with more than onnxruntime: every runtime

    def speedup(self, label: str, batch: int, threads: int) -> float:
        """On thread CPU time at 1 thread, on wall time at more (`stats.speedup`)."""
        return self.speedups(label, batch, threads).value

    def speedups(self, label: str, batch: int, threads: int) -> Speedup:
        base = self.files[self.baseline].latency[batch][threads]
        return speedup(base, self.files[label].latency[batch][threads])

    def busy(self) -> BusyCheck:
        """Whether wall and thread CPU medians disagreed (`stats.busy_check`), in any runtime."""
        if self.runtimes is not None:
            return self.runtimes.busy()
        return busy_check(labelled({label: f.latency for label, f in self.files.items()}))

    def to_dict(self) -> dict[str, Any]:
        runtimes = {} if self.runtimes is None else {"runtimes": self.runtimes.to_dict(self.baseline)}
        return {
            "baseline": self.baseline,
            "settings": self.settings.model_dump(),
            **self.busy().to_dict(),
            "files": {label: self._file_dict(label, f) for label, f in self.files.items()},
            **runtimes,
        }

    def _file_dict(self, label: str, f: FileBench) -> dict[str, Any]:
        base = self.files[self.baseline]
        memory = None if f.memory is None else {**asdict(f.memory), "method": f.memory.method}
        latency = {
            str(b): {str(t): {**s.to_dict(), **self.speedups(label, b, t).to_dict()} for t, s in by_t.items()}
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


def bench(
    files: dict[str, Path], baseline: str, settings: FileBenchSettings, runtimes: Sequence[Runtime] = ()
) -> BenchResult:
    """Latency (interleaved), session creation (interleaved), memory (one process per file), size.

    With `runtimes` besides onnxruntime, latency is measured in each of them too, every (runtime,
    file) interleaved in one run; session creation and memory stay onnxruntime's."""
    timed = runtimes or [OnnxRuntime()]
    latency = benchmark_runtimes(files, settings, timed, settings.shapes)
    stats = latency.stats[OnnxRuntime.name]
    create = session_creation_ms(files, min(settings.threads), settings.session_repeats)
    result = BenchResult(baseline, settings, runtimes=latency if len(timed) > 1 else None)
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
    """Wall and CPU figures; the busy-machine warning below the table when it applies."""
    table = Table(
        title=f"onnxruntime CPU latency; speedups over {result.baseline} (same run) compare thread "
        "CPU time at 1 thread, wall time at more",
        caption=result.busy().line() or None,
        caption_style="bold",
    )
    _file_column(table, result)
    headers = ("batch", "threads", "p50 ms", "p90 ms", "p99 ms", "samples/s", "cpu p50 ms", "cpu p90 ms")
    for header in (*headers, "speedup", "wall speedup"):
        table.add_column(header, justify="right")
    for label, f in result.files.items():
        for b, by_t in f.latency.items():
            for t, s in by_t.items():
                r = result.speedups(label, b, t)
                ratios = [f"{r.value:.2f}× ({r.basis})", f"{r.wall:.2f}×"]
                table.add_row(label, str(b), str(t), *s.cells(), *s.cpu_cells(), *ratios)
    return table


def file_table(result: BenchResult) -> Table:
    table = Table(title="files", caption=result.busy().line() or None, caption_style="bold")
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
