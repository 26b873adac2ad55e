"""`paiexport run`: recipe -> data + model -> masks -> training -> export -> validate -> bench -> report."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from torch import nn

from paiexport import __version__
from paiexport.allocation import Distribution, SparsityConfig, layer_keep_counts
from paiexport.benchmark import benchmark_files, file_size
from paiexport.data import DataSplits, load_data
from paiexport.export import save_onnx, to_onnx
from paiexport.masks import (
    get_masks,
    layer_sparsity,
    overall_sparsity,
    prunable_weights,
    strip_masks,
)
from paiexport.methods import Method, SelectionContext, make_method
from paiexport.models import build_model
from paiexport.onnx_transforms import to_sparse_initializers
from paiexport.paths import RunPaths, staged_run_dir
from paiexport.recipe import Recipe
from paiexport.report import (
    SPARSE_STORAGE_NOTE,
    UNTRAINED_WEIGHTS_NOTE,
    latency_sections,
    markdown,
    size_ratios,
    versions,
    write_json,
)
from paiexport.train import TrainCallback, TrainResult, evaluate, train
from paiexport.validate import FileValidation, onnx_weight_sparsity, validate_file


@dataclass
class Timer:
    console: Console
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        start = time.perf_counter()
        with self.console.status(f"{what}…"):
            yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self.console.print(f"[green]✓[/] {what} ({self.seconds[name]:.1f} s)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def effective_sparsity(recipe: Recipe) -> SparsityConfig:
    return recipe.sparsity.model_copy(update={"target": recipe.effective_target()})


def planned_layer_sparsity(
    weights: dict[str, torch.Tensor], sparsity: SparsityConfig
) -> dict[str, float | None]:
    """Per-layer target implied by the distribution (global has none per layer)."""
    if sparsity.distribution is Distribution.global_:
        return {n: None for n in weights}
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    keep = layer_keep_counts(shapes, sparsity.target, sparsity.distribution)
    return {n: 1.0 - keep[n] / prod(shapes[n]) for n in weights}


def prepare(recipe: Recipe) -> tuple[DataSplits, nn.Module, Method, SelectionContext]:
    """Seeded data, model and method: the same recipe gives the same starting point."""
    seed_everything(recipe.seed)
    data = load_data(recipe.data.name, seed=recipe.seed, val_fraction=recipe.data.val_fraction)
    model = build_model(recipe.model.name, recipe.model.args, data.input_shape, data.num_classes)
    method = make_method(recipe.method)
    ctx = SelectionContext(
        model,
        data,
        effective_sparsity(recipe),
        recipe.data.batch_size,
        torch.Generator().manual_seed(recipe.seed),
    )
    return data, model, method, ctx


@dataclass
class RecipeTrainer:
    """The recipe's training loop, bound to the run folder; methods call it (maybe repeatedly)."""

    recipe: Recipe
    data: DataSplits
    paths: RunPaths

    def __call__(
        self, model: nn.Module, callbacks: list[TrainCallback], *, epochs: int | None = None, tag: str = ""
    ) -> TrainResult:
        cfg = self.recipe.train if epochs is None else self.recipe.train.model_copy(update={"epochs": epochs})
        return train(model, self.data, cfg, batch_size=self.recipe.data.batch_size, seed=self.recipe.seed,
                     metrics_path=self.paths.metrics, checkpoint_dir=self.paths.checkpoints / tag,
                     callbacks=callbacks)  # fmt: skip


def select_and_train(
    recipe: Recipe, paths: RunPaths, timer: Timer
) -> tuple[nn.Module, DataSplits, TrainResult, Method]:
    """Masks and training as the method defines them; returns the model with masks baked in."""
    data, model, method, ctx = prepare(recipe)
    with timer.stage("fit", f"selecting masks and training ({recipe.method.name})"):
        result = method.fit(ctx, RecipeTrainer(recipe, data, paths))
    torch.save(get_masks(model), paths.masks)
    return strip_masks(model.cpu()).eval(), data, result, method


def export_variants(model: nn.Module, recipe: Recipe, data: DataSplits, paths: RunPaths) -> dict[str, Path]:
    dense = to_onnx(model, data.input_shape, recipe.export.opset)
    save_onnx(dense, paths.onnx("dense"))
    # Sparse storage is the very last transform: later ONNX round trips would drop it.
    save_onnx(to_sparse_initializers(dense, recipe.export.sparse_threshold), paths.onnx("sparse"))
    return {"dense": paths.onnx("dense"), "sparse": paths.onnx("sparse")}


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


def run_recipe(
    recipe: Recipe, out_dir: Path, *, force: bool = False, console: Console | None = None
) -> dict[str, Any]:
    """Run a recipe end to end; the finished run folder appears at `out_dir` atomically."""
    console = console or Console(stderr=True)
    timer, start = Timer(console), time.perf_counter()
    with staged_run_dir(out_dir, force) as paths:
        paths.recipe.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        model, data, result, method = select_and_train(recipe, paths, timer)
        _, torch_acc = evaluate(model, data.test)
        with timer.stage("export", "exporting ONNX (dense, sparse)"):
            files = export_variants(model, recipe, data, paths)
        with timer.stage("validate", "validating ONNX files"):
            checks: dict[str, FileValidation] = {
                v: validate_file(p, v, model, data.test) for v, p in files.items()
            }
        bench = recipe.bench
        with timer.stage("bench", "benchmarking in onnxruntime"):
            stats = benchmark_files(
                files,
                batch_sizes=bench.batch_sizes,
                threads=bench.threads,
                warmup=bench.warmup,
                iterations=bench.iterations,
            )
        sizes = {v: file_size(p) for v, p in files.items()}
        report = {
            "paiexport_version": __version__,
            "recipe": recipe.to_dict(),
            "recipe_hash": recipe.digest(),
            "method": recipe.method.name,
            "weights_trained": method.trains_weights,
            "accuracy": {"torch": torch_acc, "onnx": {v: c.accuracy for v, c in checks.items()}},
            "sparsity": sparsity_section(model, recipe, files),
            "validation": {v: c.to_dict() for v, c in checks.items()},
            **latency_sections(stats),
            "size_bytes": sizes,
            "size_ratio_vs_dense": size_ratios(sizes),
            "files": {v: p.name for v, p in files.items()},
            "training": {
                "epochs": recipe.train.epochs, "seconds": round(result.seconds, 3),
                "best_epoch": result.best_epoch,
                "exported_epoch": (result.best_epoch if recipe.train.checkpoint.value == "best"
                                   else recipe.train.epochs),
                "final": result.history[-1] if result.history else None,
            },
            "timings_s": {**timer.seconds, "total": round(time.perf_counter() - start, 3)},
            "notes": [SPARSE_STORAGE_NOTE, *([] if method.trains_weights else [UNTRAINED_WEIGHTS_NOTE])],
            "versions": versions(),
            **method.report(),
        }  # fmt: skip
        write_json(report, paths.report_json)
        paths.report_md.write_text(markdown(report))
    return report
