"""How fast are narrow convolutions in onnxruntime? (why resnet20's compact file misses 4x)

    python -m benchmarks.narrow_convs [--iterations 30] [--batch 64]

Six stacked 3x3 convolutions + ReLU, batch 64, 1 thread, interleaved, medians, float and
static int8 (QOperator), at the widths and resolutions of resnet20's stages:
- dense resnet20's stage 1 is 16 channels at 32x32; at 75% channel sparsity it keeps 4, i.e.
  1/16 of the FLOPs. The ratio 16ch@32 / 4ch@32 is what the compact file can gain there.
- 16ch@16 is the same 4-channel stage after an exact space-to-depth relayout (2x2 pixels
  become 16 channels; the 3x3 kernel is rewritten over them): it removes the NCHWc padding
  of 4 channels to MLAS's 16-channel block, and shows how much that relayout could win.
- int8 vs float per width is why `export.int8_min_channels` exists.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn

from paiexport.bench.latency import benchmark_files
from paiexport.bench.settings import BenchSettings
from paiexport.export.quantize import to_int8
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.export.variants import Int8Mode

CASES = {"16ch@32": (16, 32), "4ch@32": (4, 32), "16ch@16": (16, 16), "8ch@16": (8, 16), "32ch@8": (32, 8)}


def conv_stack(channels: int, depth: int = 6) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers).eval()


def files(out: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    paths = {}
    for name, (channels, size) in CASES.items():
        shape = (channels, size, size)
        proto = to_onnx(conv_stack(channels), shape, 18)
        int8 = to_int8(proto, Int8Mode.static, torch.rand(64, *shape).numpy())
        for label, p in ((name, proto), (f"{name} int8", int8)):
            paths[label] = out / f"{label.replace(' ', '_').replace('@', '_')}.onnx"
            save_onnx(p, paths[label])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    paths = files(Path(tempfile.mkdtemp(prefix="narrow_convs-")))
    settings = BenchSettings(batch_sizes=[args.batch], threads=[1], warmup=5, iterations=args.iterations)
    stats = benchmark_files(paths, settings)
    ms = {label: stats[label][args.batch][1].median_ms for label in paths}
    for label, value in ms.items():
        print(f"  {label:<14} {value:8.3f} ms")
    print(
        f"4 channels instead of 16 at 32x32 (1/16 of the FLOPs): {ms['16ch@32'] / ms['4ch@32']:.2f}x faster"
    )
    print(f"space-to-depth relayout of the 4-channel stage: {ms['4ch@32'] / ms['16ch@16']:.2f}x faster")
    for name in CASES:
        print(f"  int8 vs float, {name:<8} {ms[name] / ms[f'{name} int8']:.2f}x")


if __name__ == "__main__":
    main()
