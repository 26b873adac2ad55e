"""Why `paiexport bench` interleaves files: ratios stay put while the machine changes.

    python benchmarks/interleaving.py [--iterations 7] [--batch 1024]

Two hand-built MatMul chains (4 and 2 layers of 1024 x 1024) are benchmarked three times,
while 0, 1 and 2 busy loops share the benchmark's CPU core (Linux CPU affinity). Printed per
call: the absolute median latency of each file and the speedup of the small one over the big
one, then the coefficient of variation (std / mean) of each over the three calls.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from paiexport.bench.latency import bench
from paiexport.bench.settings import FileBenchSettings
from paiexport.bench.synthetic import matmul_chain


def cv(values: list[float]) -> float:
    return float(np.std(values) / np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    files = {
        "big": matmul_chain(tmp / "big.onnx", 4, 1024),
        "small": matmul_chain(tmp / "small.onnx", 2, 1024),
    }
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    big, small, ratio = [], [], []
    print(f"batch {args.batch}, {args.iterations} iterations, all on CPU {cpu}")
    for n in (0, 1, 2):
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
        for p in burners:
            os.sched_setaffinity(p.pid, {cpu})
        try:
            result = bench(
                files,
                "big",
                FileBenchSettings(
                    batch_sizes=[args.batch], threads=[1], warmup=1, iterations=args.iterations, memory=False
                ),
            )
        finally:
            for p in burners:
                p.kill()
                p.wait()
        big.append(result.files["big"].latency[args.batch][1].median_ms)
        small.append(result.files["small"].latency[args.batch][1].median_ms)
        ratio.append(result.speedup("small", args.batch, 1))
        print(f"{n} busy loops: big {big[-1]:8.2f} ms  small {small[-1]:8.2f} ms  speedup {ratio[-1]:.3f}x")
    print(
        f"coefficient of variation over the 3 calls: big {cv(big):.3f}, small {cv(small):.3f}, "
        f"speedup {cv(ratio):.3f}"
    )


if __name__ == "__main__":
    main()
