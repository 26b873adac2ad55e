"""Training throughput (samples/s) of dense, masked and compact-trained models, per device.

    python benchmarks/train_throughput.py [--steps 50] [--batch-size 128] [--model cnn1d]

- dense: the model as built;
- masked: 90% unstructured ERK masks, gradients masked, masks re-applied after each step;
- compact: 75% of every hidden layer's output channels pruned and removed (compact_model),
  then the smaller dense model trained.
Every available device is measured in the same run (cpu; each CUDA device, fp32 and bf16),
steps interleaved (dense, masked, compact, dense, ...) so all three see the same machine state.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.export.compact import compact_model
from paiexport.models import ModelName, build_model
from paiexport.sparsity.allocation import allocate_masks
from paiexport.sparsity.masks import attach_masks, enforce_after_step, prunable_weights, strip_masks
from paiexport.sparsity.types import Distribution
from paiexport.training.precision import Precision, PrecisionName

WARMUP = 5


def build(kind: str, model_name: ModelName, data, device: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model(model_name, {}, data.input_shape, data.num_classes)
    weights = prunable_weights(model)
    if kind == "masked":
        scores = {n: torch.rand(w.shape) for n, w in weights.items()}
        attach_masks(model, allocate_masks(scores, 0.9, Distribution.erk))
    if kind == "compact":
        last = list(weights)[-1]  # the classifier keeps every output
        rows = {n: torch.rand(w.shape[0]) < 0.25 for n, w in weights.items() if n != last}
        masks = {
            n: rows[n].view(-1, *[1] * (w.dim() - 1)).expand_as(w) for n, w in weights.items() if n in rows
        }
        attach_masks(model, masks)
        model = compact_model(strip_masks(model), data.input_shape).model
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if kind == "masked":
        enforce_after_step(opt, model)
    return model, opt


def step(model: nn.Module, opt: torch.optim.Optimizer, amp: Precision, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    with amp.autocast():
        loss = nn.functional.cross_entropy(model(x), y)
    amp.backward(loss)
    amp.step(opt)


def measure(device: str, precision: PrecisionName, args, data) -> dict[str, float]:
    x = data.train.x[: args.batch_size].to(device)
    y = data.train.y[: args.batch_size].to(device)
    kinds = ("dense", "masked", "compact")
    runs = {k: (*build(k, args.model, data, device), Precision(precision, device)) for k in kinds}
    seconds = dict.fromkeys(kinds, 0.0)
    for i in range(args.steps + WARMUP):
        for kind, (model, opt, amp) in runs.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step(model, opt, amp, x, y)
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
            if i >= WARMUP:
                seconds[kind] += time.perf_counter() - start
    return {k: args.steps * args.batch_size / s for k, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--model", type=ModelName, default=ModelName.cnn1d)
    args = parser.parse_args()
    data = load_data(DatasetName.mnist1d, seed=0, val_fraction=0.1)
    targets = [("cpu", PrecisionName.fp32)]
    for i in range(torch.cuda.device_count()):
        targets += [(f"cuda:{i}", PrecisionName.fp32), (f"cuda:{i}", PrecisionName.bf16)]
    print(f"{args.model.value}, batch {args.batch_size}, {args.steps} steps; samples/s")
    print(f"{'device':<10} {'precision':<9} {'dense':>10} {'masked':>10} {'compact':>10}")
    for device, precision in targets:
        rate = measure(device, precision, args, data)
        print(
            f"{device:<10} {precision.value:<9} {rate['dense']:>10.0f} {rate['masked']:>10.0f} "
            f"{rate['compact']:>10.0f}"
        )


if __name__ == "__main__":
    main()
