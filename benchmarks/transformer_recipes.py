"""The bundled transformer recipes, sparse as shipped vs dense, over several seeds.

    python -m benchmarks.transformer_recipes [--seeds 3] [--epochs N] [--recipes bert_heads50]
                                             [--quick] [--json F]

For each recipe (bert_heads50, gpt_heads50) and each seed 0..seeds-1, two runs through the
Python API as `paiexport run` does them, with the recipe's data, schedule and epochs (or
`--epochs`): the recipe as shipped (SNIP at initialization keeping half the heads and a quarter
of the FFN neurons of every layer) and the same recipe with `method.name: dense` (nothing
pruned). Only what the comparison needs is exported and timed (model.onnx, and the compact file
of the sparse run, one timing iteration). Prints one Markdown table: the primary metric of the
task's baseline, mean ± std over the seeds of the dense and the sparse model, the mean ± std of
the per-seed difference (sparse - dense, the same seed's data order and initial weights), and
the compact file's parameters. `--quick` is the CI size: a tiny model, one epoch, one seed; its
figures mean nothing.
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

from paiexport.api import run_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["bert_heads50", "gpt_heads50"]
MINIMAL_BENCH = {"bench.batch_sizes": [1], "bench.iterations": 1, "bench.warmup": 0, "bench.seq_lens": []}
DENSE = {"method.name": "dense", "sparsity.target": 0.0, "sparsity.group_targets": {}}
DENSE_FORMATS = {"export.formats": ["dense"]}
SPARSE_FORMATS = {"export.formats": ["dense", "compact"]}
QUICK = {
    "model.args.config.hidden_size": 32,
    "model.args.config.num_attention_heads": 4,
    "model.args.config.intermediate_size": 64,
    "train.epochs": 1,
}
QUICK_EXTRA = {"gpt_heads50": {"model.args.config.num_key_value_heads": 4}}


def run(recipe: str, out: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """report.json of one run of recipes/<recipe>.yaml (a failed verdict included)."""
    run_recipe(ROOT / "recipes" / f"{recipe}.yaml", out, overrides=overrides, force=True)
    return json.loads((out / "report.json").read_text())


def overrides(recipe: str, seed: int, epochs: int | None, quick: bool) -> dict[str, Any]:
    common: dict[str, Any] = {"seed": seed, **MINIMAL_BENCH}
    if quick:
        common.update({**QUICK, **QUICK_EXTRA.get(recipe, {})})
    if epochs is not None:
        common["train.epochs"] = epochs
    return common


def measure(recipe: str, seeds: int, epochs: int | None, quick: bool, out: Path) -> dict[str, Any]:
    """One recipe's figures: dense and sparse runs for every seed."""
    dense, sparse, diffs, seconds = [], [], [], []
    report: dict[str, Any] = {}
    for seed in range(seeds):
        start = time.perf_counter()
        common = overrides(recipe, seed, epochs, quick)
        d = run(recipe, out / f"{recipe}-dense-{seed}", {**common, **DENSE, **DENSE_FORMATS})
        report = run(recipe, out / f"{recipe}-sparse-{seed}", {**common, **SPARSE_FORMATS})
        primary = report["task"]["primary"]
        dense.append(d["metrics"]["torch"][primary])
        sparse.append(report["metrics"]["torch"][primary])
        diffs.append(sparse[-1] - dense[-1])
        seconds.append(time.perf_counter() - start)
        print(f"  {recipe} seed {seed}: dense {dense[-1]:.4g}, sparse {sparse[-1]:.4g} ({seconds[-1]:.0f} s)")
    task, compact = report["task"], report.get("compact") or {}
    return {
        "recipe": recipe,
        "task": task["name"],
        "primary": task["primary"],
        "higher_is_better": task["higher_is_better"],
        "baseline": task["baseline"],
        "dense": dense,
        "sparse": sparse,
        "difference": diffs,
        "params_before": compact.get("params_before"),
        "params_after": compact.get("params_after"),
        "epochs": report["recipe"]["train"]["epochs"],
        "seconds_per_seed": statistics.fmean(seconds),
    }


def spread(values: list[float]) -> str:
    """mean ± sample standard deviation (mean alone for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {statistics.stdev(values):.2g}"


def table(rows: list[dict[str, Any]]) -> str:
    header = ["recipe", "task", "primary metric", "baseline", "dense", "sparse", "sparse − dense"]
    header += ["compact params", "epochs", "s/seed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        arrow = "↑" if r["higher_is_better"] else "↓"
        params = f"{r['params_after']:,} / {r['params_before']:,}" if r["params_before"] is not None else "—"
        cells = [f"`{r['recipe']}`", r["task"], f"{r['primary']} {arrow}", f"{r['baseline']:.4g}"]
        cells += [spread(r["dense"]), spread(r["sparse"]), spread(r["difference"]), params]
        cells += [str(r["epochs"]), f"{r['seconds_per_seed']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--epochs", type=int, default=None, help="instead of each recipe's train.epochs")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--quick", action="store_true", help="CI size: a tiny model, 1 epoch, 1 seed")
    parser.add_argument("--out", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every recipe's figures here")
    args = parser.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if not (ROOT / "recipes" / f"{r}.yaml").is_file()]
    if unknown:
        parser.error(f"no recipes/<name>.yaml for: {', '.join(unknown)}")
    seeds = 1 if args.quick else args.seeds
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = [measure(r, seeds, args.epochs, args.quick, out) for r in recipes]
    print()
    print(
        f"{datetime.date.today()} · {platform.machine()} · torch {torch.__version__} · {seeds} seed(s) · "
        f"{'quick · ' if args.quick else ''}{time.perf_counter() - start:.0f} s in total"
    )
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "seeds": seeds, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
