"""Deployable speed vs the dense file of the same run (onnxruntime, CPU, 1 thread).

    python -m benchmarks.deploy_speed [--epochs N] [--iterations 200]
        [--channel-run DIR] [--unstructured-run DIR] [--parts resnet,channel,unstructured]

1. The bundled channel recipe synflow_channel75 at 75% channel sparsity: compact must be >= 5x
   faster than dense at batch 64 and compact+int8 >= 10x, each within 1 point of PyTorch.
2. snip90 (unstructured 90%): compact never slower than dense and equal to it within float32
   noise (max abs diff <= 1e-4, the bound of every parity check);
   int8 within 1 point.
3. resnet20 on 32x32 RGB images (`benchmarks/synthetic_images.py`), SynFlow at 75% channel
   sparsity over the dependency graph's channel groups (residual channels included): compact
   >= 4x and compact+int8 >= 8x faster than dense at batch 64, both >= 2.5x at batch 1;
   compact's accuracy equal to PyTorch's, compact+int8 within 1 point. The compact file is
   exported with `export.space_to_depth: 16` (narrow stages on 2x2 pixel blocks, exact); the
   plain compact file is printed beside it.

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

from benchmarks.synthetic_images import SHAPE, fit, image_data, resnet20, synflow_channel75
from paiexport.bench.latency import benchmark_files
from paiexport.bench.settings import BenchSettings
from paiexport.cli.overrides import parse_overrides
from paiexport.data import load_data
from paiexport.export.compact import compact_model
from paiexport.export.quantize import to_int8
from paiexport.export.space_to_depth import space_to_depth
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.export.variants import Int8Mode
from paiexport.recipe import bundled_recipes_dir, load_recipe
from paiexport.runs.pipeline import run_recipe
from paiexport.sparsity.masks import strip_masks
from paiexport.training.loop import evaluate
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


def heading(report: dict, sparsity: str) -> str:
    """The run's name, method, `sparsity` (as worded by the caller) and PyTorch accuracy."""
    torch_acc = report["accuracy"]["torch"]
    return f"\n{report['recipe']['name']} ({report['method']}, {sparsity}, torch acc {torch_acc:.2%})"


def channel_part(run: Path, iterations: int) -> bool:
    report = json.loads((run / "report.json").read_text())
    ms = bench(run, ["dense", "compact", "compact.int8"], iterations)
    print(heading(report, f"{report['sparsity']['reached']:.1%} sparsity"))
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
    compact_1, int8_1 = ms["dense@1"] / ms["compact@1"], ms["dense@1"] / ms["compact.int8@1"]
    print(f"  (batch 1: compact {compact_1:.2f}x, compact+int8 {int8_1:.2f}x)")
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
    compact_out = run_session(make_session(run / "model.compact.onnx"), x)
    dense_out = run_session(make_session(run / "model.onnx"), x)
    diff = float(np.abs(compact_out - dense_out).max())
    print(heading(report, f"unstructured {report['sparsity']['reached']:.1%}"))
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


def resnet_files(epochs: int, samples: int, out: Path) -> tuple[dict[str, Path], object, float]:
    """Select, train (masked), compact and export resnet20; returns files, test split, torch acc."""
    data = image_data(samples)
    model = resnet20(data, seed=0)
    synflow_channel75(model, data)
    fit(model, data, epochs, seed=0, masked=True)
    model = strip_masks(model.cpu()).eval()
    torch_acc = evaluate(model, data.test)[1]["accuracy"]
    small = compact_model(model, SHAPE)
    print(f"\nresnet20 3x32x32, synflow 75% channel: params {small.params_before} -> {small.params_after}")
    plain = to_onnx(small.model, SHAPE, 18)
    # the recipe's `export: {space_to_depth: 16, int8: static}`: the 4- and 8-channel stages run
    # on 2x2 pixel blocks (16 and 32 channels), exact, and wide enough for int8 to pay
    compact, relaid = space_to_depth(plain, 16)
    print(f"  space_to_depth: {relaid} convolutions on 2x2 blocks")
    protos = {
        "dense": to_onnx(model, SHAPE, 18),
        "compact": compact,
        "compact.plain": plain,
        "compact.int8": to_int8(compact, Int8Mode.static, data.train.x[:256].numpy()),
    }
    files = {v: out / f"{v}.onnx" for v in protos}
    for v, proto in protos.items():
        save_onnx(proto, files[v])
    return files, data.test, torch_acc


def resnet_part(epochs: int, samples: int, iterations: int, out: Path) -> bool:
    files, test, torch_acc = resnet_files(epochs, samples, out)
    settings = BenchSettings(batch_sizes=[1, BATCH], threads=[1], warmup=10, iterations=iterations)
    stats = benchmark_files(files, settings)
    ms = {f"{v}@{b}": stats[v][b][1].median_ms for v in files for b in (1, BATCH)}
    for key, value in ms.items():
        print(f"  median {key:<20} {value:.4f} ms")
    ok = True
    plain = [ms[f"dense@{b}"] / ms[f"compact.plain@{b}"] for b in (BATCH, 1)]
    print(
        f"  (compact.plain, without space_to_depth: {plain[0]:.2f}x at batch 64, {plain[1]:.2f}x at batch 1)"
    )
    for variant, need64 in (("compact", 4.0), ("compact.int8", 8.0)):
        for b, need in ((BATCH, need64), (1, 2.5)):
            ratio = ms[f"dense@{b}"] / ms[f"{variant}@{b}"]
            line(f"{variant} speedup vs dense, batch {b}", ratio, f">= {need:g}", ratio >= need)
            ok &= ratio >= need
    x, y = test.x.numpy(), test.y.numpy()
    acc = {v: float((run_session(make_session(files[v]), x).argmax(1) == y).mean()) for v in files}
    print(f"  (torch acc {torch_acc:.2%}; onnx {', '.join(f'{v} {a:.2%}' for v, a in acc.items())})")
    line(
        "compact accuracy - torch (points)",
        (acc["compact"] - torch_acc) * 100,
        "== 0",
        acc["compact"] == torch_acc,
    )
    drop = (torch_acc - acc["compact.int8"]) * 100
    line("compact+int8 accuracy drop (points)", drop, "<= 1", drop <= 1.0)
    return ok and acc["compact"] == torch_acc and drop <= 1.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs (default: recipe's)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--channel-run", type=Path, default=None, help="reuse a finished channel run")
    parser.add_argument("--unstructured-run", type=Path, default=None, help="reuse a finished snip90 run")
    parser.add_argument("--parts", default="resnet,channel,unstructured", help="which checks to run")
    parser.add_argument("--samples", type=int, default=2048, help="resnet part: synthetic images")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    common = [f"train.epochs={args.epochs}"] if args.epochs is not None else []
    tmp = Path(tempfile.mkdtemp(prefix="deploy_speed-"))
    ok = True
    if "resnet" in parts:
        ok &= resnet_part(args.epochs or 3, args.samples, args.iterations, tmp)
    if "channel" in parts:
        ok &= channel_part(
            args.channel_run or train("synflow_channel75", common, tmp / "channel75"), args.iterations
        )
    if "unstructured" in parts:
        run = args.unstructured_run or train("snip90", common, tmp / "snip90")
        ok &= unstructured_part(run, args.iterations)
    print("\nall acceptance checks pass" if ok else "\nSOME ACCEPTANCE CHECKS FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
