"""Training time with resumable checkpoints (every epoch) divided by training time without.

    python benchmarks/checkpoint_overhead.py [--epochs 3] [--repeats 2] [--recipes rigl90 lth90 ...]

For each bundled recipe (all by default), the method's whole training (`fit`: every phase, e.g.
each LTH level) runs `--epochs` epochs per phase, alternately without and with a
`TrainSession` writing `checkpoints/resume.pt` (atomic: temporary file, fsync, rename) after
every epoch, in the same process, so both see the same machine state. The ratio is the median
time with / the median time without. Goal: <= 1.05 (5% overhead). On a loaded machine the
ratio of whole runs is noisy, so the time spent inside the checkpoint writes themselves
(serialise, fsync, rename) is also measured, as a share of the fit time of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from paiexport.cli.overrides import parse_overrides
from paiexport.paths import RunPaths
from paiexport.recipe import bundled_recipes_dir, load_recipe
from paiexport.runs.stages import prepare, recipe_trainer, training_session
from paiexport.training.checkpoint import TrainSession

WRITES = {"seconds": 0.0, "count": 0}


def timed_write(self: TrainSession, _write=TrainSession.write) -> None:
    start = time.perf_counter()
    _write(self)
    WRITES["seconds"] += time.perf_counter() - start
    WRITES["count"] += 1


def fit_seconds(name: str, epochs: int, checkpoint: bool) -> float:
    overrides = [f"train.epochs={epochs}"]
    if name.startswith("magnitude_after_training"):
        overrides.append(f"method.finetune_epochs={epochs}")
    recipe = load_recipe(bundled_recipes_dir() / f"{name}.yaml", parse_overrides(overrides))
    with tempfile.TemporaryDirectory() as tmp:
        paths = RunPaths(Path(tmp))
        data, _, method, ctx = prepare(recipe)
        session = training_session(paths, recipe.train.checkpoint_every) if checkpoint else None
        start = time.perf_counter()
        method.fit(ctx, recipe_trainer(recipe, data, paths, session))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--recipes", nargs="*", default=sorted(p.stem for p in bundled_recipes_dir().glob("*.yaml"))
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    TrainSession.write = timed_write
    ratios, shares = [], []
    for name in args.recipes:
        times: dict[bool, list[float]] = {False: [], True: []}
        WRITES.update(seconds=0.0, count=0)
        for _ in range(args.repeats):
            for checkpoint in (False, True):  # interleaved: A B A B
                times[checkpoint].append(fit_seconds(name, args.epochs, checkpoint))
        without, with_ = statistics.median(times[False]), statistics.median(times[True])
        ratios.append(with_ / without)
        shares.append(WRITES["seconds"] / sum(times[True]))
        each = 1000 * WRITES["seconds"] / max(WRITES["count"], 1)
        print(
            f"{name:<28} without {without:6.2f} s  with {with_:6.2f} s  ratio {ratios[-1]:.3f}  "
            f"writes {WRITES['count'] // args.repeats} x {each:.1f} ms = {shares[-1]:.1%} of fit",
            flush=True,
        )
    print(
        f"checkpoint overhead: run ratio median {statistics.median(ratios):.3f} (max {max(ratios):.3f}); "
        f"time in checkpoint writes median {statistics.median(shares):.1%} (max {max(shares):.1%}); goal 5%"
    )


if __name__ == "__main__":
    main()
