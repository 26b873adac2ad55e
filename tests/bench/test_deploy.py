"""The `auto` deploy choice: the fastest candidate by geometric mean of its median latencies."""

from __future__ import annotations

import pytest

from paiexport.bench.deploy import choose_deploy
from paiexport.bench.latency import LatencyStats
from paiexport.verify.validate import FileValidation, accuracy_validation


def check(variant: str, accuracy: float = 0.9, parity: bool = True) -> FileValidation:
    """A file that loads; int8 files are lossy (judged by their accuracy drop, not parity)."""
    lossy = variant.endswith("int8")
    return accuracy_validation(
        variant, True, True, 0.0, parity, accuracy, 0.9, True, parity_required=not lossy
    )


def stats(*medians: float) -> dict[int, dict[int, LatencyStats]]:
    """Medians over the settings batch 1 and 8 x threads 1 and 2."""
    it = iter(medians)
    return {b: {t: LatencyStats(m := next(it), m, m, b / m) for t in (1, 2)} for b in (1, 8)}


def test_the_geometric_mean_over_every_setting_decides():
    timings = {"dense": stats(1.0, 4.0, 2.0, 8.0), "compact": stats(0.5, 0.5, 16.0, 16.0)}
    chosen, section = choose_deploy(timings, {v: check(v) for v in timings}, 1.0)
    # dense: (1 * 4 * 2 * 8) ** (1/4) = 2.83; compact: (0.5 * 0.5 * 16 * 16) ** (1/4) = 2.83 too
    assert section["candidates"]["dense"]["geomean_latency_ms"] == pytest.approx(64**0.25)
    assert section["candidates"]["compact"]["geomean_latency_ms"] == pytest.approx(64**0.25)
    timings["compact"] = stats(0.5, 0.5, 16.0, 15.0)
    chosen, section = choose_deploy(timings, {v: check(v) for v in timings}, 1.0)
    assert chosen == "compact" and section["variant"] == "compact"  # the arithmetic mean would say dense


def test_only_validated_deploy_candidates_count():
    timings = {"dense": stats(4, 4, 4, 4), "sparse": stats(1, 1, 1, 1), "compact": stats(2, 2, 2, 2)}
    chosen, section = choose_deploy(timings, {"dense": check("dense"), "sparse": check("sparse")}, 1.0)
    assert chosen == "dense" and set(section["candidates"]) == {
        "dense"
    }  # compact unvalidated, sparse no candidate


def test_nothing_eligible_ships_nothing():
    timings = {"dense": stats(1, 1, 1, 1), "int8": stats(0.5, 0.5, 0.5, 0.5)}
    checks = {"dense": check("dense", parity=False), "int8": check("int8", accuracy=0.5)}  # broken, lossy
    chosen, section = choose_deploy(timings, checks, 1.0)
    assert chosen is None and section["variant"] is None
    assert section["candidates"]["int8"]["accuracy_drop_points"] == pytest.approx(40.0)
    assert not any(c["eligible"] for c in section["candidates"].values())


def test_one_thread_choice_is_on_thread_cpu_time():
    """A busy machine inflated compact's wall medians; its thread CPU time is what decides."""

    def timed(wall: float, cpu: float) -> dict[int, dict[int, LatencyStats]]:
        return {1: {1: LatencyStats(wall, wall, wall, 1 / wall, cpu, cpu, cpu, "thread", 1)}}

    timings = {"dense": timed(1.0, 1.0), "compact": timed(3.0, 0.5)}
    chosen, section = choose_deploy(timings, {v: check(v) for v in timings}, 1.0)
    assert chosen == "compact" and section["candidates"]["compact"]["geomean_latency_ms"] == 0.5
    assert "thread CPU time" in section["criterion"]
