"""Epoch time of masked vs `train.compact: true` vs dense training, in one run.

    python -m benchmarks.train_compact [--model resnet20|bert] [--epochs 3] [--seeds 3] [--samples 2048]

resnet20 (default): on 32x32 RGB images (`benchmarks/synthetic_images.py`), SynFlow at 75%
channel sparsity (the synflow_channel75 selection). Goal: compact >= 3x faster per epoch than
dense.

bert: the bundled recipe bert_heads50 (`benchmarks/train_compact_bert.py`): a BERT-style encoder
(transformers, from a config; `--width` sets its hidden size, FFN 4x, heads of 16) classifying
standard-library modules, SNIP keeping half the heads and a quarter of the FFN neurons of every
layer (`sparsity.group_targets`), trained as the recipe says. Goal: compact >= 2x faster per
epoch than dense.

The library's training loop, 1 thread. For every seed the three variants run back to back
(dense, masked, compact), so all see the same machine state. Accuracy goal: compact's test
accuracy within the seed spread of masked training (|mean difference| <= the larger max-min
range over seeds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial

import torch

from benchmarks.synthetic_images import fit, image_data, resnet20, synflow_channel75
from paiexport.data import DatasetName, load_data
from paiexport.training.compact import shrink_for_training
from paiexport.training.loop import evaluate

VARIANTS = ("dense", "masked", "compact")
GOALS = {"resnet20": 3.0, "bert": 2.0}  # compact vs dense epoch time


def one(variant: str, *, data, epochs: int, seed: int) -> tuple[float, float, int]:
    """(seconds per epoch, test accuracy, trained parameters) of one variant and seed."""
    model = resnet20(data, seed)
    if variant != "dense":
        synflow_channel75(model, data)
    if variant == "compact":
        model = shrink_for_training(model, data.train.x[:2]).model
    _, per_epoch = fit(model, data, epochs, seed, masked=variant == "masked")
    acc = evaluate(model, data.test)[1]["accuracy"]
    return per_epoch, acc, sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(GOALS), default="resnet20")
    parser.add_argument("--width", type=int, default=256, help="bert: the hidden size")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument(
        "--data",
        choices=["synthetic", "digits"],
        default="synthetic",
        help="synthetic 32x32 RGB (timing; every variant solves it) or the bundled 8x8 digits "
        "(a task with real accuracy differences)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.model == "bert":
        from benchmarks.train_compact_bert import bert_one

        runner = partial(bert_one, width=args.width)
    else:
        data = (
            image_data(args.samples)
            if args.data == "synthetic"
            else load_data(DatasetName.digits, seed=0, val_fraction=0.1)
        )
        runner = partial(one, data=data)
    return summary(args, runner)


def summary(args: argparse.Namespace, runner) -> int:
    """Every seed and variant, the medians, the speedups and the accuracy gap; the exit code."""
    times = {v: [] for v in VARIANTS}
    accs = {v: [] for v in VARIANTS}
    params = {}
    for seed in range(args.seeds):
        for v in VARIANTS:
            per_epoch, acc, params[v] = runner(v, epochs=args.epochs, seed=seed)
            times[v].append(per_epoch)
            accs[v].append(acc)
            print(f"seed {seed} {v:<8} {per_epoch:7.2f} s/epoch  test acc {acc:.2%}  params {params[v]}")
    print()
    for v in VARIANTS:
        accs_text = ", ".join(f"{a:.2%}" for a in accs[v])
        print(f"{v:<8} median {statistics.median(times[v]):7.2f} s/epoch   acc {accs_text}")
    speedup = statistics.median(times["dense"]) / statistics.median(times["compact"])
    spread = max(max(accs[v]) - min(accs[v]) for v in ("masked", "compact"))
    gap = abs(statistics.mean(accs["compact"]) - statistics.mean(accs["masked"]))
    vs_masked = statistics.median(times["masked"]) / statistics.median(times["compact"])
    goal = GOALS[args.model]
    ok_speed, ok_acc = speedup >= goal, gap <= spread
    print(
        f"\ncompact vs dense epoch time: {speedup:.2f}x (goal >= {goal:g}) {'PASS' if ok_speed else 'FAIL'}"
    )
    print(f"compact vs masked epoch time: {vs_masked:.2f}x")
    print(
        f"accuracy gap compact-masked {gap * 100:.2f} points, seed spread {spread * 100:.2f} "
        f"{'PASS' if ok_acc else 'FAIL'}"
    )
    return 0 if ok_speed and ok_acc else 1


if __name__ == "__main__":
    sys.exit(main())
