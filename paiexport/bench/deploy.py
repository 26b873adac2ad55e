"""What ships: the `auto` choice of `model.deploy.onnx`."""

from __future__ import annotations

import math
from typing import Any

from paiexport.bench.latency import LatencyStats
from paiexport.export.variants import DEPLOY, SPARSE
from paiexport.verify.validate import FileValidation


def _geomean_ms(by_batch: dict[int, dict[int, LatencyStats]]) -> float:
    medians = [s.median_ms for by_t in by_batch.values() for s in by_t.values()]
    return math.exp(sum(math.log(max(m, 1e-9)) for m in medians) / len(medians))


def choose_deploy(
    stats: dict[str, dict[int, dict[int, LatencyStats]]],
    checks: dict[str, FileValidation],
    torch_accuracy: float,
    max_accuracy_drop: float,
) -> tuple[str | None, dict[str, Any]]:
    """The fastest variant (geometric mean of its median latencies over the benchmark
    settings of this run) whose file is not broken and, for a lossy file, whose test accuracy
    is at most `max_accuracy_drop` points below PyTorch's. The sparse file is no candidate: onnxruntime
    densifies it at load, so it is never faster than model.onnx."""
    candidates: dict[str, dict[str, Any]] = {}
    for variant, by_batch in stats.items():
        if variant in (SPARSE, DEPLOY) or variant not in checks:
            continue
        check = checks[variant]
        drop = (torch_accuracy - check.accuracy) * 100
        # Every check, parity included: a broken file must never ship, however fast it is.
        eligible = check.passed and check.within_limit(max_accuracy_drop)
        candidates[variant] = {
            "geomean_latency_ms": _geomean_ms(by_batch), "accuracy": check.accuracy,
            "accuracy_drop_points": drop, "eligible": eligible,
        }  # fmt: skip
    eligible = [v for v, c in candidates.items() if c["eligible"]]
    chosen = min(eligible, key=lambda v: candidates[v]["geomean_latency_ms"]) if eligible else None
    return chosen, {
        "variant": chosen,
        "max_accuracy_drop": max_accuracy_drop,
        "criterion": "lowest geometric mean of median latency over the run's bench settings",
        "candidates": candidates,
    }
