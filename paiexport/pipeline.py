"""`paiexport run`: recipe -> data + model -> masks -> training -> export -> validate -> bench -> report."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import onnx
import torch
import yaml
from rich.console import Console
from torch import nn

from paiexport import __version__
from paiexport.bench.deploy import choose_deploy
from paiexport.bench.latency import benchmark_files, file_size
from paiexport.data import DataSplits, load_dataset
from paiexport.display import Display
from paiexport.errors import UserError
from paiexport.export.compact import compact_model, max_abs_diff
from paiexport.export.metadata import input_normalization
from paiexport.export.quantize import to_int8
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.export.transforms import set_metadata, to_sparse_initializers
from paiexport.export.variants import (
    COMPACT,
    COMPACT_INT8,
    DENSE,
    DEPLOY,
    INT8,
    QUANTIZED,
    SPARSE,
    ExportFormat,
    variants_for,
)
from paiexport.methods import Method, SelectionContext, make_method
from paiexport.models import check_sample_batch
from paiexport.models.factory import make_model
from paiexport.paths import RunPaths, staged_run_dir
from paiexport.recipe import Recipe
from paiexport.reporting.html import write_html_report
from paiexport.reporting.report import (
    SPARSE_STORAGE_NOTE,
    UNTRAINED_WEIGHTS_NOTE,
    latency_sections,
    machine,
    markdown,
    size_ratios,
    versions,
    write_json,
)
from paiexport.seeding import seed_everything, stream
from paiexport.sparsity.allocation import layer_keep_counts
from paiexport.sparsity.collapse import check_collapse, find_collapse
from paiexport.sparsity.masks import (
    get_masks,
    layer_sparsity,
    overall_sparsity,
    prunable_weights,
    strip_masks,
)
from paiexport.sparsity.structure import structure_notes
from paiexport.sparsity.types import Distribution, NMPattern, SparsityConfig, StructureKind
from paiexport.threads import resolve_threads, torch_threads
from paiexport.training import distributed, stop
from paiexport.training.callbacks import TrainCallback
from paiexport.training.checkpoint import TrainSession
from paiexport.training.loop import CheckpointChoice, TrainResult, evaluate, train
from paiexport.training.metrics_log import MetricsLog
from paiexport.training.resumable import drop_resumable, resume_dir
from paiexport.training.trackers import TrackerCallback
from paiexport.verdict import check_gates_measurable, gates_section, run_verdict
from paiexport.verify.validate import FileValidation, onnx_weight_sparsity, torch_logits, validate_file


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


def planned_layer_sparsity(
    weights: dict[str, torch.Tensor], sparsity: SparsityConfig
) -> dict[str, float | None]:
    """Per-layer target implied by the distribution (global and structured selection have none)."""
    if sparsity.distribution is Distribution.global_ or sparsity.structure is not StructureKind.unstructured:
        return {n: None for n in weights}
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    keep = layer_keep_counts(shapes, sparsity.target, sparsity.distribution)
    return {n: 1.0 - keep[n] / prod(shapes[n]) for n in weights}


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


@dataclass
class RecipeTrainer:
    """The recipe's training loop, bound to the run folder; methods call it (maybe repeatedly)."""

    recipe: Recipe
    data: DataSplits
    paths: RunPaths
    session: TrainSession | None = None  # checkpoints every phase; resumes a saved one
    trackers: TrackerCallback | None = None  # train.log_to; first, so it sees every logged record

    def __call__(
        self,
        model: nn.Module,
        callbacks: list[TrainCallback],
        *,
        epochs: int | None = None,
        tag: str = "",
        checkpoint: CheckpointChoice | None = None,
    ) -> TrainResult:
        cfg = self.recipe.train if epochs is None else self.recipe.train.model_copy(update={"epochs": epochs})
        if checkpoint is not None:
            cfg = cfg.model_copy(update={"checkpoint": checkpoint})
        return train(model, self.data, cfg, batch_size=self.recipe.data.batch_size, seed=self.recipe.seed,
                     metrics_path=self.paths.metrics, checkpoint_dir=self.paths.checkpoints / tag,
                     callbacks=[*([self.trackers] if self.trackers else []), *callbacks],
                     session=self.session)  # fmt: skip


def training_session(paths: RunPaths, every: int) -> TrainSession:
    """The run's checkpoints: continued where the staging folder holds a resume file."""
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    if paths.resume_state.is_file():
        return TrainSession.resume(paths.resume_state, MetricsLog(paths.metrics), every)
    return TrainSession(paths.resume_state, MetricsLog(paths.metrics), every)


def select_and_train(
    recipe: Recipe, paths: RunPaths, timer: Timer, trackers: TrackerCallback | None = None
) -> tuple[nn.Module, DataSplits, TrainResult, Method]:
    """Masks and training as the method defines them; returns the model with masks baked in."""
    data, model, method, ctx = prepare(recipe)
    threads = resolve_threads(recipe.train.threads, model, data.input_shape, recipe.data.batch_size)
    session = training_session(paths, recipe.train.checkpoint_every)
    stage = timer.stage("fit", f"selecting masks and training ({recipe.method.name})")
    with torch_threads(threads), stage, stop.training():
        result = method.fit(ctx, RecipeTrainer(recipe, data, paths, session, trackers))
    stop.raise_if_stopped()
    result.threads = threads
    masks = get_masks(model)
    torch.save(masks, paths.masks)
    # Methods check their selection; this catches collapse that happened during training.
    check_collapse(masks, recipe.sparsity.allow_layer_collapse, f"{recipe.method.name} training")
    model = strip_masks(model.cpu()).eval()
    torch.save(model.state_dict(), paths.model_state)  # what `paiexport export` restores
    return model, data, result, method


@dataclass
class ExportedVariants:
    """The files of a run (every variant but `deploy`) and what compaction did."""

    files: dict[str, Path]
    compact: dict[str, Any] | None = None


def compact_variant(
    model: nn.Module, dense: onnx.ModelProto, recipe: Recipe, data: DataSplits, metadata: dict[str, str]
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The compact graph and what compaction did (parameters, max abs diff vs the masked model)."""
    result = compact_model(model, data.input_shape)
    diff = max_abs_diff(model, result.model, data.test.x)
    info = {
        "params_before": result.params_before,
        "params_after": result.params_after,
        "torch_max_abs_diff": diff,
    }
    # Nothing to remove (typical of unstructured masks): ship the dense graph itself, so the
    # compact file is never slower than model.onnx and equal to it bit for bit.
    shrunk = result.params_after < result.params_before
    graph = to_onnx(result.model, data.input_shape, recipe.export.opset) if shrunk else dense
    tags = {**metadata, "paiexport.variant": COMPACT, "paiexport.compact_max_abs_diff": str(diff)}
    return set_metadata(graph, tags), info


def export_variants(
    model: nn.Module, recipe: Recipe, data: DataSplits, paths: RunPaths, metadata: dict[str, str]
) -> ExportedVariants:
    """Every variant of `export.formats`, each carrying `metadata`; `deploy` comes after the bench."""
    wanted = variants_for(recipe.export.formats)
    opset, files, compact_info = recipe.export.opset, {}, None

    def save(variant: str, proto: onnx.ModelProto) -> None:
        files[variant] = paths.onnx(variant)
        save_onnx(proto, files[variant])

    dense = set_metadata(to_onnx(model, data.input_shape, opset), {**metadata, "paiexport.variant": DENSE})
    if DENSE in wanted:
        save(DENSE, dense)
    compact = None
    if COMPACT in wanted:
        compact, compact_info = compact_variant(model, dense, recipe, data, metadata)
        save(COMPACT, compact)
    calibration = data.train.head(recipe.export.calibration_samples).numpy()
    quantized: dict[bytes, onnx.ModelProto] = {}  # graph -> int8 graph: calibrate each graph once
    for variant, source in ((INT8, dense), (COMPACT_INT8, compact)):
        if variant in wanted and source is not None:
            graph = source.graph.SerializeToString()  # compact is the dense graph when nothing shrank
            if graph not in quantized:
                quantized[graph] = to_int8(source, recipe.export.int8, calibration, torch.get_num_threads())
            tags = {p.key: p.value for p in source.metadata_props}
            tags.update({"paiexport.variant": variant, "paiexport.int8": recipe.export.int8.value})
            save(variant, set_metadata(quantized[graph], tags))
    if SPARSE in wanted:
        # Sparse storage is the very last transform: later ONNX round trips would drop it.
        tagged = set_metadata(dense, {"paiexport.variant": SPARSE})
        save(SPARSE, to_sparse_initializers(tagged, recipe.export.sparse_threshold))
    return ExportedVariants(files, compact_info)


def validate_variants(
    files: dict[str, Path], model: nn.Module, recipe: Recipe, data: DataSplits, sources: dict[str, str]
) -> dict[str, FileValidation]:
    """`sources` maps a copied variant (deploy) to the variant it was copied from."""
    drop = recipe.validate.max_accuracy_drop
    reference = torch_logits(model, data.test.x)
    zeros = {n: (int((w == 0).sum()), w.numel()) for n, w in prunable_weights(model).items()}
    return {
        v: validate_file(p, v, model, data.test, quantized=sources.get(v, v) in QUANTIZED,
                         max_accuracy_drop=drop, reference=reference, zeros=zeros)
        for v, p in files.items()
    }  # fmt: skip


def write_deploy(
    exported: ExportedVariants, stats: dict, checks: dict[str, FileValidation], torch_acc: float,
    recipe: Recipe, paths: RunPaths, model: nn.Module, data: DataSplits,
) -> dict[str, Any]:  # fmt: skip
    """`auto`: copy the fastest variant within validate.max_accuracy_drop to model.deploy.onnx."""
    chosen, section = choose_deploy(stats, checks, torch_acc, recipe.validate.max_accuracy_drop)
    if chosen is None:
        return section
    source = onnx.load(str(exported.files[chosen]))
    save_onnx(set_metadata(source, {"paiexport.variant": DEPLOY, "paiexport.deploy_source": chosen}),
              paths.onnx(DEPLOY))  # fmt: skip
    exported.files[DEPLOY] = paths.onnx(DEPLOY)
    stats[DEPLOY] = stats[chosen]
    checks.update(validate_variants({DEPLOY: paths.onnx(DEPLOY)}, model, recipe, data, {DEPLOY: chosen}))
    return section


def sparsity_section(model: nn.Module, recipe: Recipe, files: dict[str, Path]) -> dict[str, Any]:
    exclude = recipe.sparsity.exclude
    reached = layer_sparsity(model, exclude)
    weights = prunable_weights(model, exclude)
    planned = planned_layer_sparsity(weights, effective_sparsity(recipe))
    in_files = {v: onnx_weight_sparsity(p, list(weights)) for v, p in files.items()}
    return {
        "target": recipe.effective_target(),
        "reached": overall_sparsity(model, exclude),
        "distribution": recipe.sparsity.distribution.value,
        "per_layer": {
            n: {"numel": weights[n].numel(), "target": planned[n], "reached": reached[n],
                "onnx": {v: found.get(n) for v, found in in_files.items()}}
            for n in weights
        },
    }  # fmt: skip


def assemble_report(
    recipe: Recipe, model: nn.Module, method: Method, result: TrainResult, exported: ExportedVariants,
    checks: dict[str, FileValidation], stats: dict, deploy: dict[str, Any] | None, torch_acc: float,
) -> dict[str, Any]:  # fmt: skip
    """report.json's content (without `timings_s`, which the caller adds last)."""
    files = exported.files
    sizes = {v: file_size(p) for v, p in files.items()}
    weights = prunable_weights(model, recipe.sparsity.exclude)
    untrained = [] if method.trains_weights else [UNTRAINED_WEIGHTS_NOTE]
    return {
        "paiexport_version": __version__,
        "recipe": recipe.to_dict(),
        "recipe_hash": recipe.digest(),
        "method": recipe.method.name,
        "weights_trained": method.trains_weights,
        "accuracy": {"torch": torch_acc, "onnx": {v: c.accuracy for v, c in checks.items()}},
        "sparsity": sparsity_section(model, recipe, files),
        "layer_collapse": find_collapse({n: w != 0 for n, w in weights.items()}),
        "validation": {v: c.to_dict() for v, c in checks.items()},
        **latency_sections(stats),
        "size_bytes": sizes,
        "size_ratio_vs_dense": size_ratios(sizes),
        "files": {v: p.name for v, p in files.items()},
        "training": {
            "epochs": recipe.train.epochs,
            "seconds": round(result.seconds, 3),
            "best_epoch": result.best_epoch,
            "exported_epoch": result.exported_epoch,
            "threads": result.threads,
            "final": result.history[-1] if result.history else None,
        },
        "compact": exported.compact,
        "deploy": deploy,
        "notes": [SPARSE_STORAGE_NOTE, *untrained, *structure_notes(model, recipe.sparsity, list(weights))],
        "versions": versions(),
        "machine": machine(),
        **method.report(),
    }


def tracked_figures(report: dict[str, Any]) -> dict[str, Any]:
    """What `train.log_to` trackers get once the run is done."""
    return {"accuracy": report["accuracy"], "sparsity": report["sparsity"]["reached"],
            "size_bytes": report["size_bytes"]}  # fmt: skip


def run_recipe(
    recipe: Recipe,
    out_dir: Path,
    *,
    force: bool = False,
    console: Console | None = None,
    resume: bool = False,
) -> dict[str, Any]:
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
        paths.recipe.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        trackers = (
            TrackerCallback(recipe.train.log_to, paths.root, recipe.name) if recipe.train.log_to else None
        )
        model, data, result, method = select_and_train(recipe, paths, timer, trackers)
        stack.enter_context(torch_threads(result.threads))  # evaluation, export, calibration
        _, torch_acc = evaluate(model, data.test)
        metadata = recipe.metadata(overall_sparsity(model, recipe.sparsity.exclude), torch_acc)
        metadata.update(input_normalization(data.mean, data.std))
        with timer.stage("export", f"exporting ONNX ({', '.join(f.value for f in recipe.export.formats)})"):
            exported = export_variants(model, recipe, data, paths, metadata)
        with timer.stage("validate", "validating ONNX files"):
            checks = validate_variants(exported.files, model, recipe, data, {})
        bench = recipe.bench
        with timer.stage("bench", "benchmarking in onnxruntime"):
            stats = benchmark_files(
                exported.files,
                batch_sizes=bench.batch_sizes,
                threads=bench.threads,
                warmup=bench.warmup,
                iterations=bench.iterations,
            )
        deploy = None
        if ExportFormat.auto in recipe.export.formats:
            deploy = write_deploy(exported, stats, checks, torch_acc, recipe, paths, model, data)
        report = assemble_report(recipe, model, method, result, exported, checks, stats, deploy, torch_acc)
        report["world_size"] = distributed.world_size()  # torchrun processes that trained the model
        report["gates"] = gates_section(recipe, report)  # `run` gates a CI job in one command
        exit_code, line = run_verdict(report)
        report["verdict"] = {"exit_code": exit_code, "line": line}
        report["timings_s"] = {**timer.seconds, "total": round(time.perf_counter() - start, 3)}
        write_json(report, paths.report_json)
        paths.report_md.write_text(markdown(report))
        write_html_report(paths, report)
        if trackers is not None:
            trackers.finish(tracked_figures(report))
    drop_resumable(out_dir)  # the published run supersedes any interrupted one
    return report
