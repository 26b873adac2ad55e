"""Wall and CPU-time statistics: speedup basis, the busy-machine rule, the JSON keys."""

from __future__ import annotations

import pytest

from paiexport.bench.stats import BUSY_WARNING, LatencyStats, busy_check, labelled, speedup


def timed(wall_ms: float, cpu_ms: float | None, kind: str = "thread") -> LatencyStats:
    """Hand-set medians (p90/p99 equal to them); cpu_ms None: CPU time not measured."""
    if cpu_ms is None:
        return LatencyStats(wall_ms, wall_ms, wall_ms, 1e3 / wall_ms)
    return LatencyStats(wall_ms, wall_ms, wall_ms, 1e3 / wall_ms, cpu_ms, cpu_ms, cpu_ms, kind, 1)


def test_one_thread_speedup_is_on_thread_cpu_time():
    # busy: the dense file's wall median inflated 4x, the compact one's 1.5x; CPU time did not move
    dense, compact = timed(8.0, 2.0), timed(0.75, 0.5)
    r = speedup(dense, compact)
    assert r.basis == "cpu" and r.value == r.cpu == pytest.approx(4.0)
    assert r.wall == pytest.approx(8.0 / 0.75)


def test_more_threads_speedup_stays_on_wall_time_with_both_reported():
    dense, compact = timed(4.0, 6.0, "process"), timed(1.0, 3.0, "process")
    r = speedup(dense, compact)
    assert r.basis == "wall" and r.value == r.wall == pytest.approx(4.0)
    assert r.cpu == pytest.approx(2.0)
    assert r.to_dict() == {"speedup": 4.0, "speedup_wall": 4.0, "speedup_cpu": 2.0, "basis": "wall"}


def test_without_cpu_time_the_speedup_is_the_wall_ratio():
    r = speedup(timed(2.0, None), timed(0.5, None))
    assert (r.value, r.wall, r.cpu, r.basis) == (4.0, 4.0, None, "wall")
    assert timed(2.0, None).basis_ms == 2.0 and timed(2.0, 1.0).basis_ms == 1.0


def test_from_times_takes_wall_and_cpu_medians_and_percentiles():
    wall = [0.004, 0.001, 0.003, 0.002, 0.005]  # median 3 ms
    cpu = [0.0010, 0.0030, 0.0020, 0.0015]  # median (1.5 + 2.0) / 2 = 1.75 ms
    s = LatencyStats.from_times(wall, 8, cpu, "thread", 3)
    assert s.median_ms == pytest.approx(3.0) and s.cpu_median_ms == pytest.approx(1.75)
    assert s.p90_ms == pytest.approx(4.6)  # numpy's linear interpolation: 4 + 0.6 * (5 - 4)
    assert s.cpu_p90_ms == pytest.approx(2.7)  # sorted 1, 1.5, 2, 3: index 2.7 -> 2 + 0.7 * 1
    assert s.throughput == pytest.approx(8 / 0.003)  # on the wall median, as before
    assert (s.cpu_kind, s.runs_per_sample) == ("thread", 3)
    assert LatencyStats.from_times(wall, 8).cpu_median_ms is None


def test_json_keys_keep_the_wall_figures_and_add_cpu_ones():
    s = LatencyStats.from_times([0.002], 1, [0.001], "process")
    assert s.to_dict() == {
        "median_ms": 2.0,
        "p90_ms": 2.0,
        "p99_ms": 2.0,
        "throughput": 500.0,
        "cpu_median_ms": 1.0,
        "cpu_p90_ms": 1.0,
        "cpu_p99_ms": 1.0,
        "cpu_kind": "process",
        "runs_per_sample": 1,
    }
    # stats without CPU time keep exactly the keys they always had
    assert set(timed(2.0, None).to_dict()) == {"median_ms", "p90_ms", "p99_ms", "throughput"}


@pytest.mark.parametrize(("wall", "busy"), [(1.14, False), (1.16, True), (0.86, False), (0.84, True)])
def test_busy_when_wall_and_thread_cpu_medians_disagree_by_more_than_15_percent(wall, busy):
    stats = {"dense, batch 1": timed(2.02, 2.0), "compact, batch 1": timed(wall, 1.0)}
    check = busy_check(stats)
    assert check.busy is busy
    assert check.worst_ratio == pytest.approx(wall) and check.where == "compact, batch 1"
    assert check.to_dict() == {
        "busy": busy,
        "wall_cpu_ratio": {"worst": check.worst_ratio, "where": "compact, batch 1", "tolerance": 0.15},
    }
    assert (BUSY_WARNING in check.line()) is busy


def test_process_cpu_time_never_makes_a_machine_busy():
    # 4 threads: process CPU time is 4x the wall time on an idle machine
    assert busy_check({"dense": timed(1.0, 4.0, "process"), "old": timed(1.0, None)}).busy is False
    assert busy_check({}).worst_ratio is None


def test_labelled_names_file_batch_and_threads():
    s = timed(1.0, 1.0)
    assert labelled({"dense": {64: {2: s}}}) == {"dense, batch 64, 2 thread(s)": s}
