"""Time of a masked training step divided by a dense step, same model, same run.

    python benchmarks/train_overhead.py [--steps 200] [--target 0.9]

Steps alternate (dense, masked, dense, ...) so both see the same machine state.
Goal: masked/dense <= 1.2.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.models import ModelName, build_model
from paiexport.sparsity.allocation import allocate_masks
from paiexport.sparsity.masks import attach_masks, enforce_after_step, prunable_weights
from paiexport.sparsity.types import Distribution


def make(masked: bool, target: float, data):
    torch.manual_seed(0)
    model = build_model(ModelName.cnn1d, {}, data.input_shape, data.num_classes)
    if masked:
        scores = {n: torch.rand(w.shape) for n, w in prunable_weights(model).items()}
        attach_masks(model, allocate_masks(scores, target, Distribution.erk))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if masked:
        enforce_after_step(opt, model)
    return model, opt


def step(model, opt, x, y) -> float:
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    data = load_data(DatasetName.mnist1d, seed=0, val_fraction=0.1)
    x, y = data.train.x[: args.batch_size], data.train.y[: args.batch_size]
    runs = {"dense": make(False, args.target, data), "masked": make(True, args.target, data)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(args.steps + 20):
        for name, (model, opt) in runs.items():
            t = step(model, opt, x, y)
            if i >= 20:  # warmup
                times[name].append(t)
    med = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in times.items()}
    threads = torch.get_num_threads()
    print(f"cnn1d on MNIST-1D, batch {args.batch_size}, {args.steps} steps, torch threads {threads}")
    print(f"dense step   median {med['dense']:.3f} ms")
    print(f"masked step  median {med['masked']:.3f} ms  (sparsity {args.target:.0%}, ERK)")
    print(f"masked/dense ratio  {med['masked'] / med['dense']:.3f}  (goal <= 1.2)")


if __name__ == "__main__":
    main()
