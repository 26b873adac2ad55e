"""What a file costs besides latency: size on disk, session creation time, peak memory."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from paiexport.bench.settings import SESSION_REPEATS
from paiexport.verify.inputs import file_inputs, random_feeds, resolve_shapes
from paiexport.verify.validate import make_session


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
        probe = [sys.executable, "-c", _MEMORY_PROBE, str(path), str(threads), names, str(arrays)]
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
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
