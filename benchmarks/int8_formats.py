"""Static int8 written as QDQ vs QOperator (and dynamic int8) against the dense float file.

    python -m benchmarks.int8_formats [--quick] [--epochs 1] [--iterations 200]
        [--channel-run DIR] [--parts channel,resnet] [--samples 2048]

1. channel: the bundled recipe synflow_channel75 (cnn1d 128-128-128 on mnist1d, 75% as
   channels), trained for `--epochs` (or reused with --channel-run). Its model.onnx and
   model.compact.onnx are each quantized here three ways: static QDQ and static QOperator
   (the same calibration samples, `export.calibration_samples` of the training split) and
   dynamic (ConvInteger).
2. resnet: resnet20 on 32x32 RGB images (`benchmarks/synthetic_images.py`), SynFlow at 75%
   channel sparsity, dense and compact (`space_to_depth: 16`), quantized the same three ways.

Every file of a part is timed interleaved (one call of each in turn, in a new random order
each round: a small file is up to 2x slower right after a big one), in
onnxruntime on 1 intra-op thread, at batch 64 and 1: medians of the wall time
(`time.perf_counter`) and of the calling thread's CPU time (`time.thread_time`: with one
intra-op thread onnxruntime computes on the caller, so this leaves out the time the thread
waited for a core on a shared machine). Ratios are dense median / file median (> 1: faster
than dense). Also printed: test-set top-1 of every file, and per static pair which format is
faster (QOperator median / QDQ median: > 1, QDQ faster).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from rich.console import Console

from benchmarks.synthetic_images import resnet20_75_onnx
from paiexport.cli.overrides import parse_overrides
from paiexport.data import load_dataset
from paiexport.export.quantize import to_int8
from paiexport.export.torch_export import save_onnx
from paiexport.export.variants import Int8Format, Int8Mode
from paiexport.recipe import bundled_recipes_dir, load_recipe
from paiexport.runs.pipeline import run_recipe
from paiexport.verify.validate import make_session, run_session

BATCHES = (64, 1)
KINDS = {
    "qdq": (Int8Mode.static, Int8Format.qdq),
    "qoperator": (Int8Mode.static, Int8Format.qoperator),
    "dynamic": (Int8Mode.dynamic, Int8Format.qdq),  # the format applies to static only
}


def quantized(floats: dict[str, onnx.ModelProto], calibration: np.ndarray) -> dict[str, onnx.ModelProto]:
    """Each float graph and its three int8 versions ("compact" -> "compact.qdq", ...)."""
    out = dict(floats)
    for name, proto in floats.items():
        for kind, (mode, fmt) in KINDS.items():
            out[f"{name}.{kind}"] = to_int8(proto, mode, calibration, int8_format=fmt)
    return out


def timed(
    files: dict[str, Path], x: np.ndarray, iterations: int, warmup: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, thread CPU) seconds of one call per file, the files interleaved in a new
    random order each round: a file is slower right after a big one (its caches were evicted),
    so a fixed order would favour the files that follow small ones."""
    sessions = {name: make_session(path, threads=1) for name, path in files.items()}
    feeds = {name: {s.get_inputs()[0].name: x} for name, s in sessions.items()}
    wall: dict[str, list[float]] = {name: [] for name in files}
    cpu: dict[str, list[float]] = {name: [] for name in files}
    order, rng = list(files), random.Random(0)
    for i in range(warmup + iterations):
        rng.shuffle(order)
        for name in order:
            w0, c0 = time.perf_counter(), time.thread_time()
            sessions[name].run(None, feeds[name])
            c1, w1 = time.thread_time(), time.perf_counter()
            if i >= warmup:
                wall[name].append(w1 - w0)
                cpu[name].append(c1 - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in files}


def portable(proto: onnx.ModelProto) -> str:
    """ "standard ONNX" or the non-standard domains the graph uses (after onnx.checker)."""
    onnx.checker.check_model(proto)
    domains = sorted({n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    return "standard ONNX" if not domains else "uses " + ", ".join(domains)


def report(title: str, protos: dict[str, onnx.ModelProto], test, iterations: int, out: Path) -> None:
    """Save (into `out`), time and print every file of one part; ratios against "dense"."""
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.onnx" for name in protos}
    for name, proto in protos.items():
        save_onnx(proto, files[name])
    x, y = test.x.numpy(), test.y.numpy()
    acc = {n: float((run_session(make_session(p), x).argmax(1) == y).mean()) for n, p in files.items()}
    medians = {b: timed(files, x[:b], iterations, warmup=max(2, iterations // 10)) for b in BATCHES}
    print(f"\n{title}  (1 thread, interleaved, {iterations} iterations; ratio = dense / file)")
    head = "".join(f"  wall@{b:<3} ratio  cpu@{b:<3} ratio" for b in BATCHES)
    print(f"  {'file':<20}{head}   top-1   portability")
    for name in files:
        cells = ""
        for b in BATCHES:
            (wall, cpu), (dense_wall, dense_cpu) = medians[b][name], medians[b]["dense"]
            cells += f"  {wall * 1e3:8.3f} {dense_wall / wall:5.2f}x {cpu * 1e3:8.3f} {dense_cpu / cpu:5.2f}x"
        print(f"  {name:<20}{cells}   {acc[name]:6.2%}  {portable(protos[name])}")
    for base in (n for n in protos if "." not in n):
        for b in BATCHES:
            qdq, qop = medians[b][f"{base}.qdq"], medians[b][f"{base}.qoperator"]
            print(
                f"  {base} batch {b}: QOperator / QDQ median = {qop[0] / qdq[0]:.2f} wall, "
                f"{qop[1] / qdq[1]:.2f} cpu (> 1: QDQ faster)"
            )


def channel_part(run: Path | None, epochs: int, iterations: int, out: Path) -> None:
    if run is None:
        recipe = load_recipe(
            bundled_recipes_dir() / "synflow_channel75.yaml",
            parse_overrides([f"train.epochs={epochs}", "export.formats=[dense,compact]"]),
        )
        run = out / "channel75"
        run_recipe(recipe, run, force=True, console=Console(stderr=True, quiet=True))
    recipe = load_recipe(run / "recipe.yaml")
    data = load_dataset(recipe.data, seed=recipe.seed)
    floats = {
        "dense": onnx.load(str(run / "model.onnx")),
        "compact": onnx.load(str(run / "model.compact.onnx")),
    }
    calibration = data.train.x[: recipe.export.calibration_samples].numpy()
    protos = quantized(floats, calibration)
    report("synflow_channel75 (cnn1d, mnist1d)", protos, data.test, iterations, out / "channel_files")


def resnet_part(epochs: int, samples: int, iterations: int, out: Path) -> None:
    data, floats = resnet20_75_onnx(epochs, samples)
    protos = quantized(floats, data.train.x[:256].numpy())
    report("resnet20 3x32x32, synflow 75% channel", protos, data.test, iterations, out / "resnet_files")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 epoch, 3 iterations, 128 images: a smoke run")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--channel-run", type=Path, default=None, help="reuse a finished channel run")
    parser.add_argument("--parts", default="channel,resnet", help="which parts to run")
    parser.add_argument("--samples", type=int, default=2048, help="resnet part: synthetic images")
    args = parser.parse_args()
    if args.quick:  # every step on little data: a check that the script runs, not figures
        args.epochs, args.iterations, args.samples = 1, 3, 128
    parts = set(args.parts.split(","))
    out = Path(tempfile.mkdtemp(prefix="int8_formats-"))
    if "channel" in parts:
        channel_part(args.channel_run, args.epochs, args.iterations, out)
    if "resnet" in parts:
        resnet_part(args.epochs, args.samples, args.iterations, out)


if __name__ == "__main__":
    main()
