"""CPU latency of ONNX files in onnxruntime, interleaved so ratios share one moment."""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from paiexport.validate import make_session


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


def random_input(path: Path, batch: int, seed: int = 0) -> tuple[str, np.ndarray]:
    """A float input of the model's declared shape; symbolic dimensions become `batch`."""
    model = onnx.load(str(path), load_external_data=False)
    graph_input = model.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else batch for d in graph_input.type.tensor_type.shape.dim]
    return graph_input.name, np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


def benchmark_files(
    files: dict[str, Path],
    *,
    batch_sizes: list[int],
    threads: list[int],
    warmup: int,
    iterations: int,
) -> dict[str, dict[int, dict[int, LatencyStats]]]:
    """Median/p90/p99 latency per file, batch size and thread count.

    Files are run in turn (A B A B ...) within each setting, so each file's ratio
    to another comes from the same moment of the machine.
    """
    results: dict[str, dict[int, dict[int, LatencyStats]]] = {v: {} for v in files}
    for n_threads in threads:
        sessions = {v: make_session(p, n_threads) for v, p in files.items()}
        for batch in batch_sizes:
            feeds = {v: dict([random_input(p, batch)]) for v, p in files.items()}
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
