"""The rigl90 fit stage (selection + training) on an idle CPU and beside a busy loop.

    python benchmarks/threads_under_load.py [--epochs 5] [--repeats 2]

One run measures four cases, each in a fresh process (torch fixes its inter-op threads once
per process; OMP_NUM_THREADS and MKL_NUM_THREADS are removed from the children's environment
so "default" means torch's own default): torch's default threads and `train.threads: auto`,
each idle and beside a separate process spinning on one core. Prints the best fit time of
each case and the ratio busy/idle. Goal: busy/idle <= 1.5 for auto.
Run it on the machine you care about (e.g. `taskset -c 0,1 python ...` for 2 cores).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from paiexport.cli.overrides import parse_overrides
from paiexport.paths import RunPaths
from paiexport.recipe import bundled_recipes_dir, load_recipe
from paiexport.runs.stages import Timer, select_and_train


def fit_seconds(threads: str, epochs: int) -> tuple[float, int]:
    """The fit stage of rigl90 in this process: (seconds, threads used)."""
    setting = threads if threads == "auto" else str(torch.get_num_threads())  # default: torch's own
    recipe = load_recipe(
        bundled_recipes_dir() / "rigl90.yaml",
        parse_overrides([f"train.epochs={epochs}", f"train.threads={setting}"]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        timer = Timer(Console(stderr=True, quiet=True))
        _, _, result, _ = select_and_train(recipe, RunPaths(Path(tmp)), timer)
    return timer.seconds["fit"], result.train.threads


def spin() -> None:
    while True:
        pass


def child(threads: str, epochs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}}
    cmd = [sys.executable, __file__, "--child", threads, "--epochs", str(epochs)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(threads: str, busy: bool, epochs: int, repeats: int) -> dict:
    spinner = multiprocessing.get_context("spawn").Process(target=spin, daemon=True) if busy else None
    if spinner:
        spinner.start()
    try:
        runs = [child(threads, epochs) for _ in range(repeats)]
    finally:
        if spinner:
            spinner.terminate()
            spinner.join()
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="runs per case; the fastest counts")
    parser.add_argument("--modes", default="auto,default", help="train.threads cases, in order")
    parser.add_argument("--child", choices=["default", "auto"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds, used = fit_seconds(args.child, args.epochs)
        print(json.dumps({"seconds": seconds, "threads": used}))
        return
    cores = len(os.sched_getaffinity(0))
    print(f"rigl90 fit stage, {args.epochs} epochs, {cores} usable cores, best of {args.repeats}")
    print(f"{'train.threads':<14} {'threads':>7} {'idle s':>8} {'busy s':>8} {'busy/idle':>9}", flush=True)
    for threads in args.modes.split(","):
        idle = measure(threads, False, args.epochs, args.repeats)
        busy = measure(threads, True, args.epochs, args.repeats)
        ratio = busy["seconds"] / idle["seconds"]
        times = f"{idle['seconds']:>8.2f} {busy['seconds']:>8.2f}"
        print(f"{threads:<14} {idle['threads']:>7} {times} {ratio:>8.2f}×", flush=True)


if __name__ == "__main__":
    main()
