"""`paiexport export`: the ONNX files of a finished run again, without retraining.

A run folder (or one of its checkpoints) holds everything needed: `recipe.yaml` rebuilds
the model, the checkpoint's state dict (with its `weight_mask` buffers) restores weights and
masks (`model.pt`, the exported weights, when present). The files go to `RUN/export/` by
default, staged and moved into place only when all succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from paiexport.recipe import Override, Recipe, apply_overrides, read_recipe_file, validate_recipe
from paiexport.seeding import seed_everything
from paiexport.sparsity.masks import MASK_BUFFER, attach_masks, strip_masks
from paiexport.training.compact import rebuild_compact
from paiexport.training.config import CheckpointChoice
from paiexport.training.loop import evaluate
from paiexport.variant import Variant


@dataclass(frozen=True)
class RunSource:
    root: Path
    checkpoint: Path
    recipe: Recipe


def locate_run(path: Path, overrides: Sequence[Override]) -> RunSource:
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
    if recipe.train.compact:
        model = _compact_architecture(source, model, data)
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


def _compact_architecture(source: RunSource, model: nn.Module, data: DataSplits) -> nn.Module:
    """train.compact runs saved the small model: rebuild it from the selection masks first."""
    masks_file = RunPaths(source.root).masks
    if not masks_file.is_file():
        raise UserError(f"{masks_file}: missing; a train.compact run needs it to rebuild its model")
    masks = torch.load(masks_file, map_location="cpu", weights_only=True)
    # Which folds became a bias and which an AddConstant depends on the initial constants:
    # build the initial model exactly as the run did (same seed, same order).
    recipe = source.recipe
    seed_everything(recipe.seed)
    data = load_dataset(recipe.data, seed=recipe.seed, folders=recipe.search_folders())
    model = make_model(recipe.model, data.input_shape, data.num_classes, recipe.data.batch_size,
                       recipe.search_folders())  # fmt: skip
    return rebuild_compact(model, masks, data.train.head(2))


def default_export_dir(source: RunSource) -> Path:
    return source.root / "export"


def reexport(source: RunSource, out_dir: Path, console: Console, *, force: bool = False) -> dict[str, Any]:
    """Export, validate (and, for `auto`, benchmark) the recipe's formats into `out_dir`.

    `out_dir` is written like a run folder: staged, moved into place when complete, and
    replaced only with `force`. Never the run folder itself: its report describes its files.
    """
    from paiexport.bench.deploy import write_deploy
    from paiexport.bench.latency import benchmark_files
    from paiexport.export.build import export_variants
    from paiexport.sparsity.masks import overall_sparsity
    from paiexport.verify.variants import validate_variants

    if out_dir.resolve() == source.root.resolve():
        raise UserError(f"--out {out_dir}: the run folder's report.json describes its files; choose another")
    recipe = source.recipe
    model, data = restore_model(source)
    _, torch_acc = evaluate(model, data.test)
    with staged_run_dir(out_dir, force) as paths:
        metadata = recipe.metadata(overall_sparsity(model, recipe.sparsity.exclude), torch_acc)
        exported = export_variants(model, recipe.export, data, paths, metadata)
        checks = validate_variants(exported.files, model, data.test, recipe.validate.max_accuracy_drop)
        files, deploy = exported.files, None
        if ExportFormat.auto in recipe.export.formats:
            stats = benchmark_files(exported.files, recipe.bench)
            drop, target = recipe.validate.max_accuracy_drop, paths.onnx(Variant.deploy)
            done = write_deploy(exported.files, stats, checks, torch_acc, drop, target)
            deploy = done.section
            if done.file is not None:
                files, checks = {**files, Variant.deploy: done.file}, {**checks, Variant.deploy: done.check}
    return {
        "torch_accuracy": torch_acc,
        "files": {v: str(out_dir / p.name) for v, p in files.items()},
        "validation": {v: c.to_dict() for v, c in checks.items()},
        "deploy": deploy,
    }
