"""`paiexport run`: recipe -> data + model -> masks -> training -> export -> validate -> bench -> report."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from torch import nn

from paiexport.bench.deploy import Stats, write_deploy
from paiexport.bench.latency import benchmark_files
from paiexport.data import DataSplits, load_dataset
from paiexport.display import Display
from paiexport.errors import UserError
from paiexport.export.build import ExportedVariants, export_variants
from paiexport.export.metadata import input_normalization
from paiexport.export.variants import ExportFormat
from paiexport.methods import FitResult, Method, SelectionContext, make_method
from paiexport.models.checks import check_sample_batch
from paiexport.models.factory import make_model
from paiexport.paths import RunPaths, staged_run_dir
from paiexport.recipe import Recipe
from paiexport.reporting.assemble import RunFacts, RunOutcome, build_report
from paiexport.reporting.html import write_html_report
from paiexport.reporting.report import (
    markdown,
)
from paiexport.reporting.schema import RunReport, Verdict
from paiexport.seeding import seed_everything, stream
from paiexport.sparsity.collapse import check_collapse
from paiexport.sparsity.masks import (
    get_masks,
    overall_sparsity,
    prunable_weights,
    strip_masks,
)
from paiexport.sparsity.types import NMPattern, SparsityConfig
from paiexport.threads import resolve_threads, torch_threads
from paiexport.training import distributed, stop
from paiexport.training.checkpoint import TrainSession
from paiexport.training.loop import evaluate
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.resumable import drop_resumable, resume_dir
from paiexport.training.trackers import TrackerCallback
from paiexport.training.trainer import RecipeTrainer
from paiexport.variant import Variant
from paiexport.verdict import check_gates_measurable, gates_section, run_verdict
from paiexport.verify.validate import FileValidation
from paiexport.verify.variants import validate_variants


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


def effective_sparsity(recipe: Recipe) -> SparsityConfig:
    return recipe.sparsity.model_copy(update={"target": recipe.effective_target()})


def check_fits_model(
    recipe: Recipe, model: nn.Module, sample: torch.Tensor | None = None, num_classes: int | None = None
) -> None:
    """What the recipe can only be checked against once the model exists."""
    if sample is not None:
        check_sample_batch(model, sample, num_classes)
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


def prepare(recipe: Recipe) -> tuple[DataSplits, nn.Module, Method, SelectionContext]:
    """Seeded data, model and method: the same recipe gives the same starting point."""
    seed_everything(recipe.seed)
    data = load_dataset(recipe.data, seed=recipe.seed, folders=recipe.search_folders())
    model = make_model(recipe.model, data.input_shape, data.num_classes, recipe.data.batch_size,
                       recipe.search_folders())  # fmt: skip
    check_fits_model(recipe, model, data.train.head(min(recipe.data.batch_size, 2)), data.num_classes)
    method = make_method(recipe.method)
    ctx = SelectionContext(
        model,
        data,
        effective_sparsity(recipe),
        recipe.data.batch_size,
        stream(recipe.seed, "selection"),
    )
    return data, model, method, ctx


def recipe_trainer(
    recipe: Recipe, data: DataSplits, paths: RunPaths, session: TrainSession | None = None,
    trackers: TrackerCallback | None = None,
) -> RecipeTrainer:  # fmt: skip
    return RecipeTrainer(recipe.train, recipe.data.batch_size, recipe.seed, data, paths, session, trackers)


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
    threads = resolve_threads(recipe.train.threads, model, data.input_shape, recipe.data.batch_size)
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


def export_stage(
    recipe: Recipe,
    model: nn.Module,
    data: DataSplits,
    metadata: dict[str, str],
    paths: RunPaths,
    timer: Timer,
) -> tuple[ExportedVariants, dict[str, FileValidation], Stats]:
    """The ONNX files of `export.formats`, their checks against `model` and their latencies."""
    with timer.stage("export", f"exporting ONNX ({', '.join(f.value for f in recipe.export.formats)})"):
        exported = export_variants(model, recipe.export, data, paths, metadata)
    with timer.stage("validate", "validating ONNX files"):
        checks = validate_variants(exported.files, model, data.test, recipe.validate.max_accuracy_drop)
    with timer.stage("bench", "benchmarking in onnxruntime"):
        stats = benchmark_files(exported.files, recipe.bench)
    return exported, checks, stats


def deploy_stage(
    recipe: Recipe, exported: ExportedVariants, stats: Stats, checks: dict[str, FileValidation],
    torch_acc: float, paths: RunPaths,
) -> tuple[dict[str, Path], Stats, dict[str, FileValidation], dict[str, Any] | None]:  # fmt: skip
    """Files, stats and checks with `deploy` added when `auto` chose one; the `deploy` section."""
    if ExportFormat.auto not in recipe.export.formats:
        return exported.files, stats, checks, None
    drop = recipe.validate.max_accuracy_drop
    done = write_deploy(exported.files, stats, checks, torch_acc, drop, paths.onnx(Variant.deploy))
    if done.file is None:
        return exported.files, stats, checks, done.section
    return ({**exported.files, Variant.deploy: done.file}, {**stats, Variant.deploy: done.stats},
            {**checks, Variant.deploy: done.check}, done.section)  # fmt: skip


def assemble_report(recipe: Recipe, method: Method, outcome: RunOutcome) -> RunReport:
    """report.json's content from the recipe and what the stages produced; the per-layer targets
    are the method's own where it set them (`Method.layer_targets`)."""
    sparsity = effective_sparsity(recipe)
    facts = RunFacts(
        recipe=recipe.to_dict(),
        recipe_hash=recipe.digest(),
        method=recipe.method.name,
        epochs=recipe.train.epochs,
        sparsity=sparsity,
        layer_targets=method.layer_targets(outcome.model, sparsity),
    )
    report = build_report(facts, outcome)
    report.world_size = distributed.world_size()  # torchrun processes that trained the model
    return report


def finish_report(recipe: Recipe, report: RunReport, timer: Timer, start: float, paths: RunPaths) -> None:
    """The recipe's gates and the verdict (`run` gates a CI job in one command), then the files."""
    report.gates = gates_section(recipe, report)
    exit_code, line = run_verdict(report)
    report.verdict = Verdict(exit_code=exit_code, line=line)
    report.timings_s = {**timer.seconds, "total": round(time.perf_counter() - start, 3)}
    report.write(paths.report_json)
    paths.report_md.write_text(markdown(report))
    write_html_report(paths, report)


def tracked_figures(report: RunReport) -> dict[str, Any]:
    """What `train.log_to` trackers get once the run is done."""
    return {"accuracy": report.accuracy.model_dump(), "sparsity": report.sparsity.reached,
            "size_bytes": {v: s.model_dump() for v, s in report.size_bytes.items()}}  # fmt: skip


def run_recipe(
    recipe: Recipe,
    out_dir: Path,
    *,
    force: bool = False,
    console: Console | None = None,
    resume: bool = False,
) -> RunReport:
    """Run a recipe end to end; the finished run folder appears at `out_dir` atomically.

    `resume`: continue the interrupted run of `out_dir` (same recipe) if there is one.
    """
    console = console or Console(stderr=True)
    timer, start = Timer(console), time.perf_counter()
    check_gates_measurable(recipe)
    saved = resume_dir(out_dir, yaml.safe_load(yaml.safe_dump(recipe.to_dict()))) if resume else None
    if saved is not None:
        console.print(f"resuming the interrupted run in {saved}", highlight=False, markup=False)
    with stop.stop_on_signals(), staged_run_dir(out_dir, force, saved) as paths, ExitStack() as stack:
        if saved is None:  # a resumed run keeps the saved recipe.yaml (equal to this one)
            paths.recipe.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        trackers = (
            TrackerCallback(recipe.train.log_to, paths.root, recipe.name) if recipe.train.log_to else None
        )
        model, data, fit, method = select_and_train(recipe, paths, timer, trackers)
        stack.enter_context(torch_threads(fit.train.threads))  # evaluation, export, calibration
        _, torch_acc = evaluate(model, data.test)
        compacted = fit.train.compact  # train.compact: the trained model has no masks; the selection's
        reached = overall_sparsity(model, recipe.sparsity.exclude) if compacted is None else None
        metadata = recipe.metadata(compacted["selection_sparsity"] if compacted else reached, torch_acc)
        metadata.update(input_normalization(data.mean, data.std))
        exported, checks, stats = export_stage(recipe, model, data, metadata, paths, timer)
        files, stats, checks, deploy = deploy_stage(recipe, exported, stats, checks, torch_acc, paths)
        outcome = RunOutcome(
            model=model,
            fit=fit,
            trains_weights=method.trains_weights,
            torch_accuracy=torch_acc,
            files=files,
            checks=checks,
            stats=stats,
            compact=exported.compact,
            deploy=deploy,
            example=data.test.x,
        )
        report = assemble_report(recipe, method, outcome)
        finish_report(recipe, report, timer, start, paths)
        if trackers is not None:
            trackers.finish(tracked_figures(report))
    drop_resumable(out_dir)  # the published run supersedes any interrupted one
    return report
