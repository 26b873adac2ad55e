"""`paiexport export`: the ONNX files of a finished run again, without retraining.

A run folder (or one of its checkpoints) holds everything needed: `recipe.yaml` rebuilds
the model, the checkpoint's state dict (with its `weight_mask` buffers) restores weights and
masks (`model.pt`, the exported weights, when present). The files go to `RUN/export/` by
default, staged and moved into place only when all succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from paiexport.data import DataSplits, load_dataset
from paiexport.errors import UserError
from paiexport.export.variants import ExportFormat
from paiexport.models.factory import make_model
from paiexport.paths import RunPaths, staged_run_dir
from paiexport.recipe import Recipe, apply_overrides, read_recipe_file, validate_recipe
from paiexport.sparsity.masks import MASK_BUFFER, attach_masks, strip_masks
from paiexport.training.loop import CheckpointChoice, evaluate


@dataclass(frozen=True)
class RunSource:
    root: Path
    checkpoint: Path
    recipe: Recipe


def locate_run(path: Path, overrides: list[str]) -> RunSource:
    """A run folder or a checkpoint inside one -> its recipe (with overrides) and checkpoint."""
    if path.is_dir():
        root, checkpoint = path, None
    elif path.is_file() and path.suffix == ".pt":
        root = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        checkpoint = path
    else:
        raise UserError(f"{path}: expected a run folder or a checkpoint (.pt) file")
    recipe_path = RunPaths(root).recipe
    if not recipe_path.is_file():
        raise UserError(f"{path}: no recipe.yaml in the run folder {root}")
    recipe = validate_recipe(apply_overrides(read_recipe_file(recipe_path), overrides), str(recipe_path))
    if checkpoint is None:
        paths = RunPaths(root)
        if paths.model_state.is_file():  # the exported weights, whatever the method
            checkpoint = paths.model_state
        else:
            best = recipe.train.checkpoint is CheckpointChoice.best
            checkpoint = paths.best_checkpoint if best else paths.last_checkpoint
        if not checkpoint.is_file():
            raise UserError(f"{path}: neither model.pt nor checkpoints/{checkpoint.name} found")
    return RunSource(root, checkpoint, recipe)


def restore_model(source: RunSource) -> tuple[nn.Module, DataSplits]:
    """The trained model with its masks baked in, exactly as `paiexport run` exported it."""
    recipe = source.recipe
    data = load_dataset(recipe.data, seed=recipe.seed, folders=recipe.search_folders())
    model = make_model(recipe.model, data.input_shape, data.num_classes, recipe.data.batch_size,
                       recipe.search_folders())  # fmt: skip
    try:
        state = torch.load(source.checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{source.checkpoint}: not a readable checkpoint ({type(exc).__name__})") from None
    suffix = f".{MASK_BUFFER}"
    masks = {k.removesuffix(suffix) + ".weight": v.bool() for k, v in state.items() if k.endswith(suffix)}
    if masks:
        attach_masks(model, masks)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise UserError(
            f"{source.checkpoint}: does not match the model of {source.root / 'recipe.yaml'}"
        ) from None
    return strip_masks(model).eval(), data


def default_export_dir(source: RunSource) -> Path:
    return source.root / "export"


def reexport(source: RunSource, out_dir: Path, console: Console, *, force: bool = False) -> dict[str, Any]:
    """Export, validate (and, for `auto`, benchmark) the recipe's formats into `out_dir`.

    `out_dir` is written like a run folder: staged, moved into place when complete, and
    replaced only with `force`. Never the run folder itself: its report describes its files.
    """
    from paiexport.bench.latency import benchmark_files
    from paiexport.pipeline import export_variants, validate_variants, write_deploy
    from paiexport.sparsity.masks import overall_sparsity

    if out_dir.resolve() == source.root.resolve():
        raise UserError(f"--out {out_dir}: the run folder's report.json describes its files; choose another")
    recipe = source.recipe
    model, data = restore_model(source)
    _, torch_acc = evaluate(model, data.test)
    with staged_run_dir(out_dir, force) as paths:
        metadata = recipe.metadata(overall_sparsity(model, recipe.sparsity.exclude), torch_acc)
        exported = export_variants(
            model,
            recipe,
            data,
            paths,
            metadata,
        )
        checks = validate_variants(exported.files, model, recipe, data, {})
        deploy = None
        if ExportFormat.auto in recipe.export.formats:
            b = recipe.bench
            stats = benchmark_files(exported.files, batch_sizes=b.batch_sizes, threads=b.threads,
                                    warmup=b.warmup, iterations=b.iterations)  # fmt: skip
            deploy = write_deploy(exported, stats, checks, torch_acc, recipe, paths, model, data)
    return {
        "torch_accuracy": torch_acc,
        "files": {v: str(out_dir / p.name) for v, p in exported.files.items()},
        "validation": {v: c.to_dict() for v, c in checks.items()},
        "deploy": deploy,
    }
