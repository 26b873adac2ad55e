"""onnxruntime vs OpenVINO on the same files: ratios over dense in each runtime, and across runtimes.

    python -m benchmarks.runtimes [--quick] [--epochs 1] [--iterations 200] [--parts channel,resnet]
        [--channel-run DIR] [--samples 2048]

Needs the `openvino` extra (pip install 'paiexport[openvino]').

1. channel: the bundled recipe synflow_channel75 (cnn1d 128-128-128 on mnist1d, 75% as
   channels), trained for `--epochs` (speed does not depend on accuracy) with
   `bench.runtimes: [onnxruntime, openvino]`, so the run itself validates every file in both
   runtimes; its dense, compact, int8 and compact.int8 files (static int8, QDQ) are timed here.
   --channel-run reuses a finished run folder.
2. resnet: resnet20 on 32x32 RGB images (`benchmarks/synthetic_images.py`), SynFlow at 75%
   channel sparsity, `--epochs` of training: dense, compact (`space_to_depth: 16`, as the
   deploy_speed recipe) and compact.int8 (static QDQ).

Every (runtime, file) pair is timed interleaved in one run (`bench.runtime_latency`), on 1
thread, at batch 1 and 64: medians of the calling thread's CPU time (both runtimes compute on
the caller with one thread, so preemption on a shared machine is left out; the wall medians
are in the JSON of `paiexport bench --runtime`). Printed per file and runtime: the median and
the speedup over dense in the same runtime and over dense in onnxruntime, and the top-1 of the
file in that runtime; then per file the cross-runtime ratio (onnxruntime median / OpenVINO
median: > 1, OpenVINO faster). OpenVINO runs in f32 (the CPU's default may be bf16, printed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from benchmarks.synthetic_images import resnet20_75_onnx
from paiexport.bench.runtime_latency import RuntimeLatency, benchmark_runtimes
from paiexport.bench.runtimes import make_runtimes
from paiexport.bench.settings import BenchSettings
from paiexport.cli.overrides import parse_overrides
from paiexport.data import Split, load_dataset
from paiexport.errors import UserError
from paiexport.export.quantize import to_int8
from paiexport.export.torch_export import save_onnx
from paiexport.export.variants import Int8Mode
from paiexport.recipe import bundled_recipes_dir, load_recipe
from paiexport.runs.pipeline import run_recipe
from paiexport.verify.validate import run_session

BATCHES = (1, 64)
RUNTIMES = ("onnxruntime", "openvino")
# the run validates every file in both runtimes; its own timings are not used (timed here)
CHANNEL_RUN = [
    "export.formats=[dense,compact,int8]",
    "bench.runtimes=[onnxruntime,openvino]",
    "bench.iterations=1",
    "bench.warmup=0",
]
QUICK_RUN = ["model.args.channels=[16,16,16]", "model.args.hidden=32"]
VARIANTS = {"dense": "model.onnx", "compact": "model.compact.onnx", "int8": "model.int8.onnx"}
VARIANTS["compact.int8"] = "model.compact.int8.onnx"


def time_files(files: dict[str, Path], iterations: int) -> RuntimeLatency:
    settings = BenchSettings(
        batch_sizes=list(BATCHES), threads=[1], warmup=max(2, iterations // 10), iterations=iterations
    )
    return benchmark_runtimes(files, settings, make_runtimes(RUNTIMES, "--runtime"))


def top1(files: dict[str, Path], test: Split) -> dict[tuple[str, str], float]:
    """(runtime, file) -> test top-1 of the file run in that runtime (None where unreadable)."""
    found = {}
    x, y = test.x.numpy(), test.y.numpy()
    for runtime in make_runtimes(RUNTIMES, "--runtime"):
        for name, path in files.items():
            try:
                session = runtime.open(path, 1)
            except Exception:
                continue
            found[runtime.name, name] = float((run_session(session, x).argmax(1) == y).mean())
    return found


def cpu_ms(latency: RuntimeLatency, runtime: str, name: str, batch: int) -> float | None:
    s = latency.stats.get(runtime, {}).get(name, {}).get(batch, {}).get(1)
    return None if s is None else s.basis_ms


def report(
    title: str, latency: RuntimeLatency, accuracy: dict[tuple[str, str], float], iterations: int
) -> None:
    """The table: per file and runtime, medians and speedups; then onnxruntime / OpenVINO per file."""
    print(f"\n{title}  (1 thread, interleaved, {iterations} iterations; thread CPU time medians)")
    head = "".join(f"  b{b:<3} ms  vs dense  vs ort dense" for b in BATCHES)
    print(f"  {'file':<14}{'runtime':<12}{head}   top-1")
    for name in latency.stats["onnxruntime"]:
        for runtime in RUNTIMES:
            if name in latency.unreadable.get(runtime, {}):
                print(f"  {name:<14}{runtime:<12}  unreadable: {latency.unreadable[runtime][name]}")
                continue
            cells = ""
            for b in BATCHES:
                r = latency.ratios(runtime, name, "dense", b, 1)
                same, cross = (f"{x.value:6.2f}x" if x else "     -" for x in (r.same_runtime, r.vs_default))
                cells += f"  {cpu_ms(latency, runtime, name, b):8.3f}  {same}   {cross}    "
            acc = accuracy.get((runtime, name))
            print(f"  {name:<14}{runtime:<12}{cells} {'-' if acc is None else f'{acc:6.2%}'}")
    print("  onnxruntime / openvino, same file (> 1: openvino faster):")
    for name in latency.stats["onnxruntime"]:
        ratios = []
        for b in BATCHES:
            ort, ov = cpu_ms(latency, "onnxruntime", name, b), cpu_ms(latency, "openvino", name, b)
            ratios.append(f"batch {b} {ort / ov:.2f}x" if ort and ov else f"batch {b} -")
        print(f"    {name:<14}" + ", ".join(ratios))
    for info in latency.info.values():
        version = info.version.split("-")[0]
        print(f"  {info.name} {version}: {info.precision} (CPU default {info.default_precision})")


def channel_part(run: Path | None, epochs: int, iterations: int, out: Path, quick: bool) -> None:
    if run is None:
        overrides = [f"train.epochs={epochs}", *CHANNEL_RUN, *(QUICK_RUN if quick else [])]
        recipe = load_recipe(bundled_recipes_dir() / "synflow_channel75.yaml", parse_overrides(overrides))
        run = out / "channel75"
        run_recipe(recipe, run, force=True, console=Console(stderr=True, quiet=True))
    recipe = load_recipe(run / "recipe.yaml")
    files = {v: run / name for v, name in VARIANTS.items() if (run / name).is_file()}
    test = load_dataset(recipe.data, seed=recipe.seed).test
    report("synflow_channel75 (cnn1d, mnist1d)", time_files(files, iterations), top1(files, test), iterations)


def resnet_part(epochs: int, samples: int, iterations: int, out: Path) -> None:
    data, floats = resnet20_75_onnx(epochs, samples)
    protos = {
        **floats,
        "compact.int8": to_int8(floats["compact"], Int8Mode.static, data.train.x[:256].numpy()),
    }
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.onnx" for name in protos}
    for name, proto in protos.items():
        save_onnx(proto, files[name])
    title = "resnet20 3x32x32, synflow 75% channel"
    report(title, time_files(files, iterations), top1(files, data.test), iterations)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a narrow 1-epoch model, 3 iterations: a smoke run"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--channel-run", type=Path, default=None, help="reuse a finished channel run")
    parser.add_argument("--parts", default="channel,resnet", help="which parts to run")
    parser.add_argument("--samples", type=int, default=2048, help="resnet part: synthetic images")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.iterations, args.samples = 1, 3, 128
    try:
        make_runtimes(RUNTIMES, "--runtime")
    except UserError as exc:
        sys.exit(f"error: {exc}")
    parts = set(args.parts.split(","))
    out = Path(tempfile.mkdtemp(prefix="runtimes-"))
    np.random.seed(0)
    if "channel" in parts:
        channel_part(args.channel_run, args.epochs, args.iterations, out, args.quick)
    if "resnet" in parts:
        resnet_part(args.epochs, args.samples, args.iterations, out / "resnet_files")


if __name__ == "__main__":
    main()
