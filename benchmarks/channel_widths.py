"""Does rounding channel counts up to a multiple of 8 or 16 make resnet20's compact file faster?

    python -m benchmarks.channel_widths [--multiples 1,8,16] [--iterations 15]

resnet20 on 32x32 RGB (`benchmarks/synthetic_images.py`), SynFlow at 75% channel sparsity
(uniform per group); every group's kept count is rounded up to the multiple (capped at the
group's size). Untrained weights: latency does not depend on their values. Files are
benchmarked in one interleaved run (1 thread, onnxruntime defaults, medians), float and static
int8, batch 64 and 1; ratios vs the dense file. The answer on AVX-512 (docs/deployment-and-speed.md,
"Deployable speed, measured"): no, rounding up is slower, so the allocation does not round.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks.synthetic_images import SHAPE, image_data, resnet20, synflow_channel75
from paiexport.bench.latency import benchmark_files
from paiexport.bench.settings import BenchSettings
from paiexport.export.compact import compact_model
from paiexport.export.quantize import to_int8
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.export.variants import Int8Mode
from paiexport.sparsity import channels
from paiexport.sparsity.masks import strip_masks


def rounded_counts(multiple: int) -> Callable[..., dict[int, int]]:
    """A drop-in for `channels.channel_counts` that rounds every kept count up to `multiple`."""
    original = channels.channel_counts

    def counts(
        rows: dict[int, Any], sizes: dict[int, int], density: float, distribution: Any
    ) -> dict[int, int]:
        kept = original(rows, sizes, density, distribution)
        return {n: min(len(rows[n]), -(-k // multiple) * multiple) for n, k in kept.items()}

    return counts


def files_for(multiple: int, out: Path) -> dict[str, Path]:
    data = image_data(512)
    model = resnet20(data, seed=0)
    with mock.patch.object(channels, "channel_counts", rounded_counts(multiple)):
        synflow_channel75(model, data)
    model = strip_masks(model.cpu()).eval()
    small = compact_model(model, SHAPE)
    widths = sorted({m.out_channels for m in small.model.modules() if hasattr(m, "out_channels")})
    print(f"multiple {multiple}: params {small.params_before} -> {small.params_after}, widths {widths}")
    compact = to_onnx(small.model, SHAPE, 18)
    protos = {
        f"compact/{multiple}": compact,
        f"int8/{multiple}": to_int8(compact, Int8Mode.static, data.train.x[:256].numpy()),
    }
    if multiple == 1:
        protos["dense"] = to_onnx(model, SHAPE, 18)
    for name, proto in protos.items():
        save_onnx(proto, out / f"{name.replace('/', '_')}.onnx")
    return {name: out / f"{name.replace('/', '_')}.onnx" for name in protos}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--multiples", default="1,8,16")
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="channel_widths-"))
    files: dict[str, Path] = {}
    for multiple in sorted({1, *(int(m) for m in args.multiples.split(","))}):
        files |= files_for(multiple, out)
    settings = BenchSettings(batch_sizes=[1, 64], threads=[1], warmup=5, iterations=args.iterations)
    stats = benchmark_files(files, settings)
    for batch in (64, 1):
        dense = stats["dense"][batch][1].median_ms
        for name in files:
            ms = stats[name][batch][1].median_ms
            print(f"  batch {batch:>2} {name:<12} {ms:9.3f} ms  {dense / ms:5.2f}x vs dense")


if __name__ == "__main__":
    main()
