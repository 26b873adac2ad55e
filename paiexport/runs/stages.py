"""The stages up to a trained model: seeded data and model, masks and training, thread count.

`paiexport run` calls them in order; `paiexport export` rebuilds the same model with `build` and
takes the same thread count from `fit_threads`, so the two cannot drift apart.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from rich.console import Console
from torch import nn

from paiexport.data import DataSplits, load_dataset
from paiexport.display import Display
from paiexport.errors import UserError
from paiexport.export.torch_export import check_dynamic_axes, check_sequence_lengths
from paiexport.inputs import Inputs, take
from paiexport.methods import FitResult, Method, SelectionContext, make_method
from paiexport.models.checks import check_sample_batch
from paiexport.models.factory import make_model
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe
from paiexport.seeding import seed_everything, stream
from paiexport.sparsity.collapse import check_collapse
from paiexport.sparsity.masks import get_masks, prunable_weights, strip_masks
from paiexport.sparsity.rules import load_rules, using_rules
from paiexport.sparsity.types import NMPattern, SparsityConfig
from paiexport.threads import resolve_threads, torch_threads
from paiexport.training import stop
from paiexport.training.checkpoint import TrainSession
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.trackers import TrackerCallback
from paiexport.training.trainer import RecipeTrainer


@dataclass
class Timer:
    """Times the stages; one live display (stage line + epoch bar) on `console`."""

    console: Console
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        start = time.perf_counter()
        with Display(self.console).stage(what):
            yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self.console.print(f"[green]✓[/] {what} ({self.seconds[name]:.1f} s)")


def recipe_rules(recipe: Recipe) -> AbstractContextManager[object]:
    """The dependency-graph rules of the recipe's `sparsity.rules` in effect (imported here)."""
    if not recipe.sparsity.rules:
        return nullcontext()
    return using_rules(load_rules(recipe.sparsity.rules, recipe.search_folders()))


def effective_sparsity(recipe: Recipe) -> SparsityConfig:
    return recipe.sparsity.model_copy(update={"target": recipe.effective_target()})


def check_fits_model(
    recipe: Recipe,
    model: nn.Module,
    sample: Inputs | None = None,
    num_classes: int | None = None,
    data: DataSplits | None = None,
) -> None:
    """What the recipe can only be checked against once the model exists."""
    if data is not None and data.task.name != "classification":
        n = min(recipe.data.batch_size, 2)
        check_sample_batch(model, take(data.test.x, slice(None, n)), num_classes, data.task, data.test.y[:n])
    elif sample is not None:
        check_sample_batch(model, sample, num_classes, data.task if data is not None else None)
    if data is not None and recipe.export.dynamic_axes:  # before training, not at export
        check_dynamic_axes(recipe.export.dynamic_axes, model, data.example(1))
        check_sequence_lengths(recipe.bench.seq_lens, recipe.export.dynamic_axes, model, data.example(1))
    names = list(prunable_weights(model))
    if not names:
        raise UserError(f"model.name: {recipe.model.name} has no prunable layer (no Linear or Conv weight)")
    for pattern in recipe.sparsity.exclude:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise UserError(f"sparsity.exclude: {pattern!r} matches no prunable weight ({', '.join(names)})")
    if recipe.effective_target() > 0 and not prunable_weights(model, recipe.sparsity.exclude):
        raise UserError("sparsity.exclude: leaves no prunable weight for sparsity.target")
    pattern = recipe.sparsity.structure
    kept = prunable_weights(model, recipe.sparsity.exclude)
    if isinstance(pattern, NMPattern) and all(w.dim() < 2 or w.shape[1] % pattern.m for w in kept.values()):
        raise UserError(
            f"sparsity.structure: {pattern} prunes nothing: "
            f"no layer's input dimension is a multiple of {pattern.m}"
        )
    if recipe.train.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device: {recipe.train.device} requested, but torch sees no CUDA device")


def build(recipe: Recipe) -> tuple[DataSplits, nn.Module]:
    """Seeded data and the untrained model: the same recipe gives the same starting point."""
    seed_everything(recipe.seed)
    folders = recipe.search_folders()
    data = load_dataset(recipe.data, seed=recipe.seed, folders=folders, task=recipe.make_task())
    model = make_model(recipe.model, data.input_shape, data.num_classes, recipe.data.batch_size, folders)
    return data, model


def prepare(recipe: Recipe) -> tuple[DataSplits, nn.Module, Method, SelectionContext]:
    """`build`, checked against the recipe, with the method and what its selection sees."""
    data, model = build(recipe)
    check_fits_model(recipe, model, data.train.head(min(recipe.data.batch_size, 2)), data.num_classes, data)
    method = make_method(recipe.method)
    ctx = SelectionContext(
        model,
        data,
        effective_sparsity(recipe),
        recipe.data.batch_size,
        stream(recipe.seed, "selection"),
    )
    return data, model, method, ctx


def fit_threads(recipe: Recipe, model: nn.Module, data: DataSplits) -> int:
    """torch threads of the run (`train.threads`), from the model `build` made: training,
    evaluation, export and int8 calibration all use them."""
    return resolve_threads(recipe.train.threads, model, data.example(1), recipe.data.batch_size)


def recipe_trainer(
    recipe: Recipe,
    data: DataSplits,
    paths: RunPaths,
    session: TrainSession | None = None,
    trackers: TrackerCallback | None = None,
) -> RecipeTrainer:
    batch_size = recipe.data.batch_size
    return RecipeTrainer(recipe.train, batch_size, recipe.seed, data, paths, session, trackers)


def training_session(paths: RunPaths, every: int) -> TrainSession:
    """The run's checkpoints: continued where the staging folder holds a resume file."""
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    if paths.resume_state.is_file():
        return TrainSession.resume(paths.resume_state, MetricsLog(paths.metrics), every)
    return TrainSession(paths.resume_state, MetricsLog(paths.metrics), every)


def select_and_train(
    recipe: Recipe, paths: RunPaths, timer: Timer, trackers: TrackerCallback | None = None
) -> tuple[nn.Module, DataSplits, FitResult, Method]:
    """Masks and training as the method defines them; returns the model with masks baked in."""
    data, model, method, ctx = prepare(recipe)
    threads = fit_threads(recipe, model, data)
    session = training_session(paths, recipe.train.checkpoint_every)
    trainer = recipe_trainer(recipe, data, paths, session, trackers)
    stage = timer.stage("fit", f"selecting masks and training ({recipe.method.name})")
    with torch_threads(threads), stage:
        result = method.fit(ctx, trainer)
    stop.raise_if_stopped()
    result.train.threads = threads
    if trainer.compacted is not None:  # train.compact: the small model was trained, masks from selection
        masks, model = trainer.compacted.masks, trainer.compacted.model
    else:
        masks = get_masks(model)
    torch.save(masks, paths.masks)
    # Methods check their selection; this catches collapse that happened during training.
    check_collapse(masks, recipe.sparsity.allow_layer_collapse, f"{recipe.method.name} training")
    model = strip_masks(model.cpu()).eval()
    torch.save(model.state_dict(), paths.model_state)  # what `paiexport export` restores
    return model, data, result, method
