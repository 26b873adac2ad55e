"""The training data path after #11 vs before it: mnist1d epoch time must stay within 1.05x.

    python -m benchmarks.data_path [--repeats 7]

One epoch = the seeded shuffled batches of the mnist1d training split (batch 128) fed through
a forward/backward of the bundled cnn1d, through `training.loop.train`'s batching. "old" is
the pre-#11 `Split.batches` (copied here verbatim), "new" is today's `Split` (the in-memory
fast path; a DataLoader is only used for streamed datasets). Old and new alternate
(A B A B ...) so both see the same machine load; the best of each is compared.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import torch

from paiexport.data import DatasetName, Split, load_data
from paiexport.models import ModelName, build_model


def old_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator:
    """`Split.batches` as it was before #11."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if generator is not None else None
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def epoch_seconds(batches: Iterator, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    start = time.perf_counter()
    for xb, yb in batches:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_data(DatasetName.mnist1d, seed=0, val_fraction=0.1)
    split = data.train
    assert isinstance(split, Split)
    model = build_model(ModelName.cnn1d, {"channels": [16, 16, 16], "hidden": 64}, data.input_shape, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    old, new = [], []
    for r in range(args.repeats):
        old.append(
            epoch_seconds(
                old_batches(split.x, split.y, 128, torch.Generator().manual_seed(r)), model, optimizer
            )
        )
        new.append(epoch_seconds(split.batches(128, torch.Generator().manual_seed(r)), model, optimizer))
    ratio = min(new) / min(old)
    print(
        f"mnist1d epoch (cnn1d 16-16-16, batch 128): old {min(old):.3f} s, new {min(new):.3f} s, "
        f"ratio {ratio:.3f}x"
    )
    print("PASS" if ratio <= 1.05 else "FAIL", "(bound 1.05x)")


if __name__ == "__main__":
    main()
