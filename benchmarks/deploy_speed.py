"""Deployable speed vs the dense file of the same run (onnxruntime, CPU, 1 thread).

    python -m benchmarks.deploy_speed [--epochs N] [--iterations 200]
        [--channel-run DIR] [--unstructured-run DIR]

1. The bundled channel recipe synflow_channel75 at 75% channel sparsity: compact must be >= 5x
   faster than dense at batch 64 and compact+int8 >= 10x, each within 1 point of PyTorch.
2. snip90 (unstructured 90%): compact never slower than dense and equal to it within float32
   noise (max abs diff <= 1e-4, the bound of every parity check);
   int8 within 1 point.

Runs are trained (or reused with --*-run) and their files re-benchmarked here, interleaved
(A B A B ...), so every ratio compares files at the same moment of the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from paiexport.bench.latency import benchmark_files
from paiexport.bench.settings import BenchSettings
from paiexport.cli.overrides import parse_overrides
from paiexport.data import load_data
from paiexport.pipeline import run_recipe
from paiexport.recipe import bundled_recipes_dir, load_recipe
from paiexport.verify.rules import PARITY_ATOL
from paiexport.verify.validate import make_session, run_session

BATCH = 64


def train(name: str, overrides: list[str], out: Path) -> Path:
    recipe = load_recipe(bundled_recipes_dir() / f"{name}.yaml", parse_overrides(overrides))
    run_recipe(recipe, out, force=True, console=Console(stderr=True))
    return out


def bench(run: Path, variants: list[str], iterations: int) -> dict[str, float]:
    report = json.loads((run / "report.json").read_text())
    files = {v: run / report["files"][v] for v in variants}
    stats = benchmark_files(
        files, BenchSettings(batch_sizes=[1, BATCH], threads=[1], warmup=20, iterations=iterations)
    )
    return {f"{v}@{b}": stats[v][b][1].median_ms for v in variants for b in (1, BATCH)}


def accuracy_drop(report: dict, variant: str) -> float:
    return (report["accuracy"]["torch"] - report["accuracy"]["onnx"][variant]) * 100


def line(label: str, value: float, goal: str, ok: bool) -> None:
    print(f"  {label:<46} {value:10.3g}   goal {goal:<8} {'PASS' if ok else 'FAIL'}")


def channel_part(run: Path, iterations: int) -> bool:
    report = json.loads((run / "report.json").read_text())
    ms = bench(run, ["dense", "compact", "compact.int8"], iterations)
    print(f"\n{report['recipe']['name']} ({report['method']}, {report['sparsity']['reached']:.1%} sparsity, "
          f"torch acc {report['accuracy']['torch']:.2%})")  # fmt: skip
    for key, value in ms.items():
        print(f"  median {key:<20} {value:.4f} ms")
    dense = ms[f"dense@{BATCH}"]
    checks = [
        ("compact speedup vs dense, batch 64", dense / ms[f"compact@{BATCH}"], ">= 5", 5.0),
        ("compact+int8 speedup vs dense, batch 64", dense / ms[f"compact.int8@{BATCH}"], ">= 10", 10.0),
    ]
    ok = True
    for label, value, goal, need in checks:
        line(label, value, goal, value >= need)
        ok &= value >= need
    print(f"  (batch 1: compact {ms['dense@1'] / ms['compact@1']:.2f}x, "
          f"compact+int8 {ms['dense@1'] / ms['compact.int8@1']:.2f}x)")  # fmt: skip
    for variant in ("compact", "compact.int8"):
        drop = accuracy_drop(report, variant)
        line(f"{variant} accuracy drop (points)", drop, "<= 1", drop <= 1.0)
        ok &= drop <= 1.0
    return ok


def unstructured_part(run: Path, iterations: int) -> bool:
    report = json.loads((run / "report.json").read_text())
    ms = bench(run, ["dense", "compact", "int8"], iterations)
    test = load_data(load_recipe(run / "recipe.yaml").data.name, seed=0, val_fraction=0.1).test
    x = test.x.numpy()
    diff = float(np.abs(run_session(make_session(run / "model.compact.onnx"), x)
                        - run_session(make_session(run / "model.onnx"), x)).max())  # fmt: skip
    sparsity = report["sparsity"]["reached"]
    print(f"\n{report['recipe']['name']} ({report['method']}, unstructured {sparsity:.1%}, "
          f"torch acc {report['accuracy']['torch']:.2%})")  # fmt: skip
    ok = True
    for b in (1, BATCH):
        ratio = ms[f"dense@{b}"] / ms[f"compact@{b}"]
        # "never slower" up to timer noise: 5% either way is the spread of two identical files here
        line(f"compact speedup vs dense, batch {b}", ratio, ">= 0.95", ratio >= 0.95)
        ok &= ratio >= 0.95
    # float32 equality up to summation order, the same bound as every parity check (PARITY_ATOL)
    line("compact vs dense max abs diff (test set)", diff, "<= 1e-4", diff <= PARITY_ATOL)
    drop = accuracy_drop(report, "int8")
    line("int8 accuracy drop (points)", drop, "<= 1", drop <= 1.0)
    print(f"  (int8 speedup vs dense, batch 64: {ms[f'dense@{BATCH}'] / ms[f'int8@{BATCH}']:.2f}x)")
    return ok and diff <= PARITY_ATOL and drop <= 1.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs (default: recipe's)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--channel-run", type=Path, default=None, help="reuse a finished channel run")
    parser.add_argument("--unstructured-run", type=Path, default=None, help="reuse a finished snip90 run")
    args = parser.parse_args()
    common = [f"train.epochs={args.epochs}"] if args.epochs is not None else []
    tmp = Path(tempfile.mkdtemp(prefix="deploy_speed-"))
    channel_run = args.channel_run or train("synflow_channel75", common, tmp / "channel75")
    unstructured_run = args.unstructured_run or train("snip90", common, tmp / "snip90")
    ok = channel_part(channel_run, args.iterations)
    ok &= unstructured_part(unstructured_run, args.iterations)
    print("\nall acceptance checks pass" if ok else "\nSOME ACCEPTANCE CHECKS FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
