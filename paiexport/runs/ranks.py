"""`paiexport run` under torchrun: every rank trains, rank 0 alone does the rest (training/distributed.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from paiexport.errors import UserError
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe
from paiexport.runs.stages import Timer, select_and_train
from paiexport.training import distributed


def train_on_other_rank(recipe: Recipe) -> None:
    """A torchrun rank other than 0: train in step with rank 0, into a folder that is thrown away."""
    with tempfile.TemporaryDirectory(prefix="paiexport-rank") as tmp:
        select_and_train(recipe, RunPaths(Path(tmp)), Timer(Console(stderr=True, quiet=True)))


def start_ranks(recipe: Recipe, resume: bool = False) -> bool:
    """Under torchrun, join the process group; False on ranks other than 0, after they trained."""
    if resume and distributed.launched():
        # Only rank 0 has the staging folder's checkpoint: the ranks would not resume in step.
        raise UserError("--resume: not supported under torchrun (the ranks cannot resume in step)")
    distributed.init(recipe.train.device, recipe.data.batch_size)
    if not distributed.is_main():
        train_on_other_rank(recipe)
    return distributed.is_main()
