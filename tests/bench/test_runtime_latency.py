"""Every file in every runtime, interleaved in one run; ratios per runtime and against onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from paiexport.bench.runtime_latency import RuntimeLatency, benchmark_runtimes, runtime_table
from paiexport.bench.runtimes import OnnxRuntime, Precision, Runtime, RuntimeInfo, Session
from paiexport.bench.settings import BenchSettings
from paiexport.bench.stats import LatencyStats
from paiexport.bench.synthetic import matmul_chain

CALLS: list[tuple[str, str]] = []


class Recording:
    """A session that records (runtime, file) on every run and returns zeros."""

    def __init__(self, runtime: str, path: Path) -> None:
        self.key = runtime, path.stem

    def get_inputs(self) -> list:
        return []

    def run(self, names, feeds) -> list[np.ndarray]:
        CALLS.append(self.key)
        return [np.zeros(1, np.float32)]


class Picky(Runtime):
    """Reads every file but those named "qop*"; records its runs."""

    name: ClassVar[str] = "picky"
    package: ClassVar[str] = "json"
    extra: ClassVar[str | None] = None

    def open(self, path: Path, threads: int) -> Session:
        if path.stem.startswith("qop"):
            raise RuntimeError("Exception from core.cpp\nNo conversion rule found for operations: QGemm")
        return Recording(self.name, path)

    def version(self) -> str:
        return "1.0"

    def precision(self) -> Precision:
        return Precision("bf16", "f32")

    def device(self) -> str:
        return "CPU"

    def unreadable(self, exc: BaseException) -> str:
        return str(exc).splitlines()[-1]


class RecordingOnnxRuntime(OnnxRuntime):
    def open(self, path: Path, threads: int) -> Session:
        super().open(path, threads)  # fails as onnxruntime would
        return Recording(self.name, path)


@pytest.fixture
def files(tmp_path):
    return {
        "dense": matmul_chain(tmp_path / "dense.onnx", 2, 8),
        "qop": matmul_chain(tmp_path / "qop.onnx", 1, 8),
    }


def test_every_runtime_and_file_runs_in_turn_and_unreadable_files_are_left_out(files):
    CALLS.clear()
    settings = BenchSettings(batch_sizes=[1], warmup=1, iterations=2)
    latency = benchmark_runtimes(files, settings, [RecordingOnnxRuntime(), Picky()])
    assert latency.unreadable == {"picky": {"qop": "No conversion rule found for operations: QGemm"}}
    assert set(latency.stats["onnxruntime"]) == {"dense", "qop"} and set(latency.stats["picky"]) == {"dense"}
    assert latency.stats["picky"]["dense"][1][1].cpu_kind == "thread"
    one_round = [("onnxruntime", "dense"), ("onnxruntime", "qop"), ("picky", "dense")]
    assert CALLS[:3] == one_round  # A B C A B C ...: the warmup round, then every sample in turn
    assert latency.info["picky"].default_precision == "bf16"


class FailingOnnxRuntime(OnnxRuntime):
    def open(self, path: Path, threads: int) -> Session:
        raise RuntimeError(f"cannot load {path.name}")


def test_a_file_onnxruntime_cannot_open_still_fails(files):
    # onnxruntime is the reference: a run's files all load there (a broken one is a failed check)
    with pytest.raises(RuntimeError, match=r"^cannot load dense\.onnx$"):
        benchmark_runtimes(files, BenchSettings(iterations=1), [FailingOnnxRuntime(), Picky()])


def _stats(cpu_ms: float, wall_ms: float | None = None) -> dict[int, dict[int, LatencyStats]]:
    wall = wall_ms or cpu_ms
    return {1: {1: LatencyStats(wall, wall, wall, 1.0, cpu_ms, cpu_ms, cpu_ms, "thread", 1)}}


def hand_set() -> RuntimeLatency:
    return RuntimeLatency(
        stats={
            "onnxruntime": {"dense": _stats(2.0), "compact": _stats(0.5)},
            "openvino": {"dense": _stats(1.0, wall_ms=3.0), "compact": _stats(0.25)},
        },
        unreadable={"openvino": {"qop": "RuntimeError: no QGemm"}},
        info={"openvino": RuntimeInfo("openvino", "2026.4.1-x", "CPU", "bf16", "f32", True)},
    )


def test_ratios_against_dense_in_the_same_runtime_and_in_onnxruntime():
    latency = hand_set()
    ratios = latency.ratios("openvino", "compact", "dense", 1, 1)
    assert ratios.same_runtime.value == pytest.approx(4.0) and ratios.same_runtime.basis == "cpu"
    assert ratios.vs_default.value == pytest.approx(8.0)
    assert latency.ratios("onnxruntime", "compact", "dense", 1, 1).same_runtime.value == pytest.approx(4.0)
    unmeasured = latency.ratios("openvino", "qop", "dense", 1, 1)
    assert unmeasured.same_runtime is None and unmeasured.vs_default is None
    entry = latency.to_dict("dense")["openvino"]["latency"]["compact"]["1"]["1"]
    assert entry["speedup"] == pytest.approx(4.0) and entry["speedup_vs_onnxruntime"] == pytest.approx(8.0)
    assert latency.to_dict("dense")["openvino"]["unreadable"] == {"qop": "RuntimeError: no QGemm"}


def test_busy_looks_at_every_runtime():
    busy = hand_set().busy()  # openvino's dense waited 3x its CPU time
    assert busy.busy and busy.where == "dense in openvino, batch 1, 1 thread(s)"


def test_runtime_table_shows_ratios_and_why_a_file_was_unreadable():
    from rich.console import Console

    latency = hand_set()
    latency.stats["onnxruntime"]["qop"] = _stats(0.4)
    console = Console(width=200, record=True)
    console.print(runtime_table(latency, "dense"))
    text = console.export_text()
    assert "8.00× (cpu)" in text and "4.00× (cpu)" in text
    assert "qop unreadable in openvino: RuntimeError: no QGemm" in text
    assert "openvino 2026.4.1 computes in f32 (this CPU's default: bf16)" in text
