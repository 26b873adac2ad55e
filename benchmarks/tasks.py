"""Every task example, dense vs its sparse recipe: the primary metric, the sparsity and the speedups.

    python benchmarks/tasks.py [--quick] [--examples regression,segmentation] [--out DIR] [--json F]

For each folder of EXAMPLES (examples/<name>/recipe.yaml) two runs with the recipe's seed,
data and schedule, through the Python API as `paiexport run` does them: the recipe as shipped
(sparse) and the same recipe with `method.name: dense` and `sparsity.target: 0` (dense; only
its model.onnx is written and barely timed, its metric is what counts). Prints one Markdown
table: the task, its primary metric (the direction it improves in) for the dense and the
sparse model and for the task's baseline (a useless model), the sparsity reached, the
compact file's parameters vs the dense one's, and the speedups over the sparse run's own
dense model.onnx of its compact, int8 and compact.int8 files (report.json
`speedup_vs_dense`, batch 1 and 64, 1 thread: thread CPU time, so a busy machine does not
bend them). `--quick` is the CI size: one epoch, three timing iterations, no sparse/auto
files; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from paiexport.api import run_recipe

ROOT = Path(__file__).resolve().parents[1]
# The example folders benchmarked, in table order; a new task example (char_lm) joins by its
# folder name.
EXAMPLES = ["regression", "multilabel", "segmentation", "custom_task", "char_lm"]
DENSE = {"method.name": "dense", "sparsity.target": 0.0, "export.formats": ["dense"]}
DENSE_BENCH = {"bench.batch_sizes": [1], "bench.iterations": 1, "bench.warmup": 0}
QUICK = {"train.epochs": 1, "bench.iterations": 3, "bench.warmup": 1, "export.calibration_samples": 64}
QUICK_FORMATS = {"export.formats": ["dense", "compact", "int8"]}
SPEEDUPS = ("compact", "int8", "compact.int8")
BATCHES = ("1", "64")


def run(example: str, out: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """report.json of one run of examples/<example>/recipe.yaml (a failed verdict included)."""
    run_recipe(ROOT / "examples" / example / "recipe.yaml", out, overrides=overrides, force=True)
    return json.loads((out / "report.json").read_text())


def speedups(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """{variant: {batch: speedup over the run's model.onnx at 1 thread}} (None: not measured)."""
    table = report.get("speedup_vs_dense") or {}
    return {v: {b: table.get(v, {}).get(b, {}).get("1") for b in BATCHES} for v in SPEEDUPS}


def measure(example: str, quick: bool, out: Path) -> dict[str, Any]:
    """One example's figures: dense and sparse run with the same seed."""
    start = time.perf_counter()
    common = QUICK if quick else {}
    dense = run(example, out / f"{example}-dense", {**common, **DENSE, **DENSE_BENCH})
    sparse = run(example, out / f"{example}-sparse", {**common, **(QUICK_FORMATS if quick else {})})
    task, compact = sparse["task"], sparse.get("compact") or {}
    primary = task["primary"]
    return {
        "example": example,
        "task": task["name"],
        "primary": primary,
        "higher_is_better": task["higher_is_better"],
        "baseline": task["baseline"],
        "dense": dense["metrics"]["torch"][primary],
        "sparse": sparse["metrics"]["torch"][primary],
        "sparsity": sparse["sparsity"]["reached"],
        "params_before": compact.get("params_before"),
        "params_after": compact.get("params_after"),
        "speedups": speedups(sparse),
        "verdicts": {"dense": dense["verdict"]["line"], "sparse": sparse["verdict"]["line"]},
        "seconds": time.perf_counter() - start,
    }


def figure(value: float | None, kind: str = "metric") -> str:
    if value is None:
        return "—"
    if kind == "speedup":
        return f"{value:.2f}×"
    return f"{value:.4g}"


def table(rows: list[dict[str, Any]]) -> str:
    header = ["example", "task", "primary metric", "baseline", "dense", "sparse", "sparsity"]
    header += ["compact params"]
    header += [f"{v} ×{b}" for v in SPEEDUPS for b in ("b1", "b64")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        arrow = "↑" if r["higher_is_better"] else "↓"
        params = f"{r['params_after']:,} / {r['params_before']:,}" if r["params_before"] is not None else "—"
        cells = [f"`examples/{r['example']}`", r["task"], f"{r['primary']} {arrow}"]
        cells += [figure(r["baseline"]), figure(r["dense"]), figure(r["sparse"])]
        cells += [f"{r['sparsity']:.0%}", params]
        cells += [figure(r["speedups"][v][b], "speedup") for v in SPEEDUPS for b in BATCHES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CI size: 1 epoch, 3 timing iterations")
    parser.add_argument("--examples", default=",".join(EXAMPLES), help="comma-separated example folders")
    parser.add_argument("--out", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every example's figures here")
    args = parser.parse_args(argv)
    examples = [e.strip() for e in args.examples.split(",") if e.strip()]
    unknown = [e for e in examples if not (ROOT / "examples" / e / "recipe.yaml").is_file()]
    if unknown:
        parser.error(f"no examples/<name>/recipe.yaml for: {', '.join(unknown)}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = []
        for example in examples:
            rows.append(measure(example, args.quick, out))
            print(f"  {example}: {rows[-1]['seconds']:.0f} s; sparse run: {rows[-1]['verdicts']['sparse']}")
    print()
    print(
        f"{datetime.date.today()} · {platform.machine()} · torch {torch.__version__} · "
        f"{'quick (1 epoch) · ' if args.quick else ''}{time.perf_counter() - start:.0f} s in total"
    )
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
