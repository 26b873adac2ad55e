"""What ships: the `auto` choice of `model.deploy.onnx`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from paiexport.bench.latency import LatencyStats
from paiexport.bench.runtimes import DEFAULT_RUNTIME
from paiexport.export.torch_export import save_onnx
from paiexport.export.transforms import set_metadata
from paiexport.variant import Variant
from paiexport.verify.validate import FileValidation

Stats = dict[str, dict[int, dict[int, LatencyStats]]]


def _geomean_ms(by_batch: dict[int, dict[int, LatencyStats]]) -> float:
    """On each setting's basis: thread CPU time at 1 thread, wall time at more (`LatencyStats.basis`)."""
    medians = [s.basis_ms for by_t in by_batch.values() for s in by_t.values()]
    return math.exp(sum(math.log(max(m, 1e-9)) for m in medians) / len(medians))


def choose_deploy(
    stats: dict[Variant, dict[int, dict[int, LatencyStats]]],
    checks: dict[Variant, FileValidation],
    max_metric_drop: float,
    runtime: str = DEFAULT_RUNTIME,
) -> tuple[Variant | None, dict[str, Any]]:
    """The fastest variant (geometric mean of its median latencies over the benchmark
    settings of this run: thread CPU time at 1 thread, wall time at more) whose file is not
    broken and, for a lossy file, whose primary metric is at most `max_metric_drop` worse than
    PyTorch's (points for accuracy). The sparse file is no candidate: onnxruntime densifies it
    at load, so it is never faster than model.onnx.

    `stats` and `checks` are those of `runtime` (`export.deploy_runtime`): a file it cannot read
    has neither there, so it is never chosen for it."""
    candidates: dict[str, dict[str, Any]] = {}
    for variant, by_batch in stats.items():
        if not Variant(variant).deploy_candidate or variant not in checks:
            continue
        check = checks[variant]
        # Every check, parity included: a broken file must never ship, however fast it is.
        eligible = check.passed and check.within_limit(max_metric_drop)
        latency = _geomean_ms(by_batch)
        candidates[variant] = {"geomean_latency_ms": latency, **_scores(check), "eligible": eligible}
    eligible = [v for v, c in candidates.items() if c["eligible"]]
    chosen = min(eligible, key=lambda v: candidates[v]["geomean_latency_ms"]) if eligible else None
    limit = {"max_accuracy_drop": max_metric_drop} if _classification(checks) else {}
    where = "" if runtime == DEFAULT_RUNTIME else f" in {runtime}"
    return chosen, {
        "variant": chosen,
        **limit,
        "max_metric_drop": max_metric_drop,
        "criterion": f"lowest geometric mean of median latency{where} over the run's bench settings "
        "(thread CPU time at 1 thread, wall time at more)",
        "candidates": candidates,
        **({} if runtime == DEFAULT_RUNTIME else {"runtime": runtime}),
    }


def _classification(checks: dict[Variant, FileValidation]) -> bool:
    return all(c.task == "classification" for c in checks.values())


def _scores(check: FileValidation) -> dict[str, float]:
    """A candidate's primary metric and its drop (classification: accuracy and points, as always)."""
    if check.task == "classification":
        return {"accuracy": check.metric, "accuracy_drop_points": check.metric_drop}
    return {"metric": check.metric, "metric_drop": check.metric_drop}


@dataclass(frozen=True)
class DeployResult:
    """report.json `deploy`, and the file written with its bench stats and validation."""

    section: dict[str, Any]
    chosen: Variant | None = None
    file: Path | None = None
    stats: dict[int, dict[int, LatencyStats]] | None = None
    check: FileValidation | None = None


def write_deploy(
    files: dict[str, Path],
    stats: Stats,
    checks: dict[str, FileValidation],
    max_metric_drop: float,
    target: Path,
    runtime: str = DEFAULT_RUNTIME,
) -> DeployResult:
    """`auto`: copy the fastest variant within `max_metric_drop` in `runtime` to `target`
    (model.deploy.onnx).

    The copy is the chosen graph with two metadata keys changed, so it runs and scores as the
    chosen file does: its stats and validation are the chosen file's, not measured again."""
    chosen, section = choose_deploy(stats, checks, max_metric_drop, runtime)
    if chosen is None:
        return DeployResult(section)
    source = onnx.load(str(files[chosen]))
    metadata = {"paiexport.variant": Variant.deploy.value, "paiexport.deploy_source": str(chosen)}
    save_onnx(set_metadata(source, metadata), target)
    check = dataclasses.replace(checks[chosen], variant=Variant.deploy)
    return DeployResult(section, chosen, target, stats[chosen], check)
