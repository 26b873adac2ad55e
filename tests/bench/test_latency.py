import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from paiexport.bench.latency import parse_positive_ints
from paiexport.bench.synthetic import matmul_chain
from paiexport.cli import app
from paiexport.errors import UserError

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def two_files(tmp_path):
    return matmul_chain(tmp_path / "big.onnx", 4, 64), matmul_chain(tmp_path / "small.onnx", 1, 64)


def test_bench_json_is_complete_and_consistent(two_files, tmp_path):
    big, small = two_files
    out = tmp_path / "bench.json"
    settings = ["--batch-sizes", "1,8", "--threads", "1", "--iterations", "20", "--warmup", "2"]
    result = invoke("bench", str(small), "--baseline", str(big), *settings, "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "speedup" in result.output and "big.onnx" in result.output
    data = json.loads(out.read_text())
    assert data["baseline"] == "big.onnx"
    assert isinstance(data["busy"], bool) and data["wall_cpu_ratio"]["tolerance"] == 0.15
    assert list(data["files"]) == ["big.onnx", "small.onnx"]  # baseline first
    assert data["settings"]["batch_sizes"] == [1, 8] and data["settings"]["iterations"] == 20
    assert "onnxruntime" in data["versions"]
    for label, path in (("big.onnx", big), ("small.onnx", small)):
        f = data["files"][label]
        blob = path.read_bytes()
        assert f["size_bytes"]["raw"] == len(blob)
        assert f["size_bytes"]["gzip"] == len(gzip.compress(blob, compresslevel=6, mtime=0))
        assert f["session_create_ms"] > 0
        assert 0 < f["memory"]["session_peak_mb"] < f["memory"]["peak_rss_mb"]
        assert set(f["latency"]) == {"1", "8"}
        for batch, by_t in f["latency"].items():
            s = by_t["1"]
            assert 0 < s["median_ms"] <= s["p90_ms"] <= s["p99_ms"]
            assert s["throughput"] == pytest.approx(int(batch) / (s["median_ms"] / 1e3))
            base = data["files"]["big.onnx"]["latency"][batch]["1"]
            # 1 thread: speedups compare thread CPU time; the wall ratio is reported beside it
            assert s["cpu_kind"] == "thread" and s["basis"] == "cpu"
            assert (
                s["speedup"] == s["speedup_cpu"] == pytest.approx(base["cpu_median_ms"] / s["cpu_median_ms"])
            )
            assert s["speedup_wall"] == pytest.approx(base["median_ms"] / s["median_ms"])
    assert data["files"]["big.onnx"]["size_ratio"]["raw"] == 1.0
    assert data["files"]["small.onnx"]["size_ratio"]["raw"] == pytest.approx(
        data["files"]["small.onnx"]["size_bytes"]["raw"] / data["files"]["big.onnx"]["size_bytes"]["raw"]
    )


def _burners(n: int, cpu: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    for p in procs:
        os.sched_setaffinity(p.pid, {cpu})
    return procs


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_interleaved_ratios_are_steadier_than_absolute_times(tmp_path):
    """Three `bench` calls at three machine states (0, 1, 2 busy loops sharing our CPU).

    Absolute latency changes 2-4x between calls; the ratio of the two files, measured
    interleaved (A B A B ...), barely moves. Runs last ~20-50 ms, far longer than a
    scheduler time slice, so the load slows both files alike within each call.
    """
    big, small = matmul_chain(tmp_path / "a.onnx", 4, 1024), matmul_chain(tmp_path / "b.onnx", 2, 1024)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    before = os.sched_getaffinity(0)
    absolute, ratios = [], []
    try:
        os.sched_setaffinity(0, {cpu})
        for n_burners in (0, 1, 2):
            procs = _burners(n_burners, cpu)
            try:
                out = tmp_path / f"bench{n_burners}.json"
                settings = ["--batch-sizes", "1024", "--iterations", "7", "--warmup", "1"]
                result = invoke("bench", str(big), str(small), *settings, "--json", str(out))
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            assert result.exit_code == 0, result.output
            files = json.loads(out.read_text())["files"]
            absolute.append(files["a.onnx"]["latency"]["1024"]["1"]["median_ms"])
            ratios.append(files["b.onnx"]["latency"]["1024"]["1"]["speedup"])
    finally:
        os.sched_setaffinity(0, before)

    def cv(x: list[float]) -> float:
        return float(np.std(x) / np.mean(x))

    assert cv(ratios) < cv(absolute) / 2, (absolute, ratios)


def test_bad_inputs_exit_2(tmp_path, two_files):
    big, _ = two_files
    result = invoke("bench", str(tmp_path / "missing.onnx"))
    assert result.exit_code == 2 and "missing.onnx" in result.output
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    result = invoke("bench", str(junk))
    assert result.exit_code == 2 and "junk.onnx" in result.output
    result = invoke("bench", str(big), "--batch-sizes", "1,x")
    assert result.exit_code == 2 and "--batch-sizes" in result.output


def test_parse_positive_ints():
    assert parse_positive_ints("1,8,64", "--b") == [1, 8, 64]
    assert parse_positive_ints("2,2", "--b") == [2]
    for bad in ("", "0", "1,-2", "a"):
        with pytest.raises(UserError, match="--b"):
            parse_positive_ints(bad, "--b")
