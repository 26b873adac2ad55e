"""Test accuracy of every registered method at 90% sparsity on MNIST-1D, next to dense.

    python benchmarks/methods_table.py [--seeds 3] [--epochs 20] [--threads 1] [--methods snip,lth] [--json F]

Every method runs from its own bundled recipe (the one named `<method>90.yaml`, else any
bundled recipe at 90% whose `method.name` matches, else snip90.yaml with the method's
default options), shortened to `--epochs` (epoch-valued method options such as
`finetune_epochs` are scaled by the same factor), for seeds 0..N-1. The dense baseline
runs in the same invocation with the same seeds and epochs. Prints a Markdown table:
test accuracy mean ± std (sample std over seeds), the difference to dense in points,
sparsity reached and the epochs each run trained (lth retrains once per level).
Selection + training only: no ONNX export or benchmarking.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from paiexport.errors import UserError
from paiexport.methods import BASELINE_METHOD, METHODS
from paiexport.paths import RunPaths
from paiexport.recipe import (
    Override,
    apply_overrides,
    bundled_recipes_dir,
    read_recipe_file,
    validate_recipe,
)
from paiexport.runs import stages
from paiexport.sparsity.masks import overall_sparsity
from paiexport.training.loop import evaluate
from paiexport.training.metrics_log import read_epoch_records

TARGET = 0.9
BASELINE = BASELINE_METHOD
# Every registered method except the baseline (which gets its own row). Methods that need
# special settings (optimizer, schedule) bring them in their own bundled recipe, found by
# `recipe_for`; nothing else has to be listed here, so new methods join the table as they
# are registered.
TABLE_METHODS: tuple[str, ...] = tuple(name for name, cls in METHODS.items() if cls.prunes)
EPOCH_OPTIONS = ("finetune_epochs", "start_epoch", "end_epoch")
FALLBACK_RECIPE = "snip90"


def recipe_for(method: str) -> tuple[str, dict[str, Any]]:
    """(recipe name, raw recipe) that runs `method` at 90%."""
    directory = bundled_recipes_dir()
    preferred = directory / f"{method}90.yaml"
    candidates = [preferred] if preferred.is_file() else []
    candidates += sorted(p for p in directory.glob("*.yaml") if p != preferred)
    for path in candidates:
        raw = read_recipe_file(path)
        section = raw.get("method", {})
        if (
            section.get("name") == method
            and section.get("ablation", "none") == "none"
            and raw.get("sparsity", {}).get("target") == TARGET
        ):
            return path.stem, raw
    raw = read_recipe_file(directory / f"{FALLBACK_RECIPE}.yaml")
    return f"{FALLBACK_RECIPE} (method.name={method})", {**raw, "method": {"name": method}}


def shortened(raw: dict[str, Any], epochs: int, seed: int) -> dict[str, Any]:
    """The recipe at `epochs` epochs and `seed`; epoch-valued method options scaled alike."""
    factor = epochs / max(raw.get("train", {}).get("epochs", 30), 1)
    overrides = [Override(("train", "epochs"), epochs), Override(("seed",), seed)]
    for key in EPOCH_OPTIONS:
        value = raw.get("method", {}).get(key)
        if isinstance(value, int):
            overrides.append(Override(("method", key), max(1 if value else 0, round(value * factor))))
    return apply_overrides(raw, overrides)


def run_once(raw: dict[str, Any], source: str) -> dict[str, Any]:
    recipe = validate_recipe(raw, source)
    start = time.perf_counter()
    data, model, method, ctx = stages.prepare(recipe)
    with tempfile.TemporaryDirectory() as tmp:
        paths = RunPaths(Path(tmp))
        method.fit(ctx, stages.recipe_trainer(recipe, data, paths))
        epochs = len(read_epoch_records(paths.metrics))
    acc = evaluate(model, data.test, device=recipe.train.device)[1]["accuracy"]
    return {
        "test_acc": acc,
        "sparsity": overall_sparsity(model, recipe.sparsity.exclude),
        "epochs_trained": epochs,
        "seconds": time.perf_counter() - start,
        "distribution": recipe.sparsity.distribution.value,
    }


def run_method(method: str, seeds: int, epochs: int) -> dict[str, Any]:
    if method == BASELINE:
        name, raw = BASELINE, read_recipe_file(bundled_recipes_dir() / f"{BASELINE}.yaml")
    else:
        name, raw = recipe_for(method)
    runs, error = [], None
    for seed in range(seeds):
        try:
            runs.append(run_once(shortened(raw, epochs, seed), name))
        except UserError as exc:
            error = str(exc)
            break
        print(
            f"  {method:<26} seed {seed}: test acc {runs[-1]['test_acc']:.2%} ({runs[-1]['seconds']:.1f} s)"
        )
    return {"method": method, "recipe": name, "runs": runs, "error": error}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table(rows: list[dict[str, Any]], dense_mean: float | None) -> str:
    header = ["method", "recipe", "distribution", "sparsity", "test acc (mean ± std)", "vs dense"]
    header += ["epochs/run", "s/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if row["error"] or not row["runs"]:
            lines.append(f"| {row['method']} | {row['recipe']} | - | - | error: {row['error']} | - | - | - |")
            continue
        runs = row["runs"]
        acc, std = mean_std([r["test_acc"] for r in runs])
        delta = (
            "" if dense_mean is None or row["method"] == BASELINE else f"{100 * (acc - dense_mean):+.1f} pt"
        )
        lines.append(
            f"| {row['method']} | {row['recipe']} | {runs[0]['distribution']} "
            f"| {statistics.fmean(r['sparsity'] for r in runs):.1%} "
            f"| {acc:.1%} ± {100 * std:.1f} | {delta} | {runs[0]['epochs_trained']} "
            f"| {statistics.fmean(r['seconds'] for r in runs):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per method (default 3)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per run (default 20)")
    parser.add_argument("--methods", default=",".join(TABLE_METHODS), help="comma-separated method names")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine, 2 threads ran 30x slower)",
    )
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(METHODS)}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    print(f"MNIST-1D, cnn1d, {TARGET:.0%} sparsity, {args.epochs} epochs, seeds 0..{args.seeds - 1}")
    rows = [
        run_method(m, args.seeds, args.epochs) for m in [BASELINE, *[m for m in methods if m != BASELINE]]
    ]
    dense = rows[0]["runs"]
    dense_mean = mean_std([r["test_acc"] for r in dense])[0] if dense else None
    print()
    print(
        f"{datetime.date.today()} · {platform.machine()} · {torch.get_num_threads()} torch threads · "
        f"torch {torch.__version__} · {args.seeds} seeds × {args.epochs} epochs · "
        f"{time.perf_counter() - start:.0f} s in total"
    )
    print()
    print(table(rows, dense_mean))
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "seeds": args.seeds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
