"""Timing on two clocks: samples sized to the CPU clock, both clocks per sample, a real tiny bench."""

from __future__ import annotations

import time

from paiexport.bench.clock import MAX_RUNS_PER_SAMPLE, clock_step, cpu_kind, runs_per_sample, time_interleaved
from paiexport.bench.latency import benchmark_files
from paiexport.bench.settings import BenchSettings
from paiexport.bench.synthetic import matmul_chain


def test_runs_per_sample_make_a_sample_last_50_clock_steps():
    assert runs_per_sample(1e-3, 1e-9) == 1  # a fine clock: one run per sample
    assert runs_per_sample(10e-6, 1e-6) == 5  # 50 us of 1 us steps from 10 us runs
    assert runs_per_sample(1e-3, 4e-3) == 200  # a 4 ms tick clock and 1 ms runs
    assert runs_per_sample(1e-9, 0.0156) == MAX_RUNS_PER_SAMPLE == runs_per_sample(0.0, 1e-9)


def test_the_cpu_clock_follows_the_thread_count():
    assert cpu_kind(1) == "thread" and cpu_kind(2) == cpu_kind(8) == "process"
    step = clock_step("thread")
    assert time.get_clock_info("thread_time").resolution <= step < 0.05


def test_waiting_counts_in_wall_time_not_in_thread_cpu_time():
    """What preemption does to a run, made on purpose: a run that sleeps 5 ms."""
    calls = {"spin": 0, "sleep": 0}

    def spin() -> None:
        calls["spin"] += 1
        end = time.thread_time() + 0.002
        while time.thread_time() < end:
            pass

    def sleep() -> None:
        calls["sleep"] += 1
        time.sleep(0.005)

    samples = time_interleaved({"spin": spin, "sleep": sleep}, 1, 5, "thread")
    assert calls == {"spin": 6, "sleep": 6}  # one untimed round, five timed samples of one run
    slept = samples["sleep"].stats(1)
    assert slept.median_ms >= 5.0 and slept.cpu_median_ms < 1.0 and slept.cpu_kind == "thread"
    spun = samples["spin"].stats(1)
    assert 2.0 <= spun.cpu_median_ms <= spun.median_ms + 0.05  # + reading the CPU clock


def test_short_runs_are_timed_several_to_a_cpu_sample(monkeypatch):
    monkeypatch.setattr("paiexport.bench.clock.clock_step", lambda kind: 1.0)  # a very coarse clock
    calls = []
    samples = time_interleaved({"a": lambda: calls.append(1)}, 0, 3, "process")
    k = samples["a"].runs_per_sample
    assert k == MAX_RUNS_PER_SAMPLE and len(calls) == 1 + 3 * k  # the untimed run sizes the sample
    assert len(samples["a"].wall) == len(samples["a"].cpu) == 3  # one figure per sample on each clock


def test_a_real_one_thread_bench_has_cpu_figures_within_its_wall_figures(tmp_path):
    files = {"a": matmul_chain(tmp_path / "a.onnx", 2, 128), "b": matmul_chain(tmp_path / "b.onnx", 1, 128)}
    settings = BenchSettings(batch_sizes=[1, 16], threads=[1, 2], warmup=2, iterations=20)
    stats = benchmark_files(files, settings)
    for label in files:
        for batch in (1, 16):
            one = stats[label][batch][1]
            assert one.cpu_kind == "thread" and one.basis == "cpu"
            assert 0 < one.cpu_median_ms <= one.median_ms * 1.5
            assert one.cpu_p90_ms > 0 and one.runs_per_sample >= 1
            two = stats[label][batch][2]
            assert two.cpu_kind == "process" and two.basis == "wall" and two.cpu_median_ms > 0
