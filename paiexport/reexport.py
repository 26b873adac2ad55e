"""`paiexport export`: the ONNX files of a finished run again, without retraining.

A run folder (or one of its checkpoints) holds everything needed: `recipe.yaml` rebuilds
the model, the checkpoint's state dict (with its `weight_mask` buffers) restores weights and
masks (`model.pt`, the exported weights, when present). The files go to `RUN/export/` by
default, staged and moved into place only when all succeeded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from paiexport.data import DataSplits, load_dataset
from paiexport.errors import UserError, first_line, shorten
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

IN_PROCESS = re.compile(r"paiexport\.importing:registered_\d+")  # api.run_recipe's model and datasets


@dataclass(frozen=True)
class RunSource:
    root: Path
    checkpoint: Path
    recipe: Recipe


def factory_modules(model_name: str | None, data_name: str | None) -> list[str]:
    """The modules these `model.name` / `data.name` factories import (and so run)."""
    from paiexport.data.config import BUNDLED, FORMATS
    from paiexport.models.factory import SHORTHANDS
    from paiexport.models.registry import MODELS_BY_NAME

    specs = []
    if model_name is not None and model_name not in MODELS_BY_NAME and not model_name.startswith(SHORTHANDS):
        specs.append(model_name)
    if data_name is not None and data_name not in BUNDLED | FORMATS:
        specs.append(data_name)
    # The Python API's in-process objects import nothing (and exist only in that process).
    modules = [spec.partition(":")[0] for spec in specs if not IN_PROCESS.fullmatch(spec)]
    return list(dict.fromkeys(modules))


def check_trusted(modules: list[str], where: object, trust_code: bool) -> None:
    """A recipe naming a factory runs its code, like `trust_remote_code`: only with --trust-code."""
    if modules and not trust_code:
        listed = ", ".join(shorten(m) for m in modules)
        raise UserError(
            f"{where}: would import and run {listed} (model/data factory code); "
            "pass --trust-code if you trust it"
        )


def locate_run(path: Path, overrides: Sequence[Override], trust_code: bool = False) -> RunSource:
    """A run folder or a checkpoint inside one -> its recipe (with overrides) and checkpoint.

    A recipe whose model or data is a factory is refused unless `trust_code` (nothing imported).
    """
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
    check_trusted(factory_modules(recipe.model.name, recipe.data.name), recipe_path, trust_code)
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
    state = read_weights(source.checkpoint)  # before any work: masks.pt or junk fails at once
    data = load_dataset(recipe.data, seed=recipe.seed, folders=recipe.search_folders())
    model = make_model(recipe.model, data.input_shape, data.num_classes, recipe.data.batch_size,
                       recipe.search_folders())  # fmt: skip
    if recipe.train.compact:
        model = _compact_architecture(source, model, data)
    load_into(model, state, f"{source.checkpoint}: does not fit the model of {source.root / 'recipe.yaml'}")
    return strip_masks(model).eval(), data


def read_tensors(file: Path, what: str) -> dict[str, torch.Tensor]:
    """Names -> tensors saved by torch (a state dict, masks.pt); else a UserError naming `file`."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{file}: not a readable {what} ({type(exc).__name__})") from None
    if not isinstance(state, Mapping) or not state:
        raise UserError(f"{file}: not a {what} (names -> tensors), but a {type(state).__name__}")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError(f"{file}: not a {what} (names -> tensors)")
    return dict(state)


def read_weights(file: Path) -> dict[str, torch.Tensor]:
    """model.pt or a checkpoint: weights (and `weight_mask` buffers), not masks.pt's booleans."""
    state = read_tensors(file, "model state dict")
    if all(v.dtype == torch.bool for v in state.values()):
        raise UserError(f"{file}: holds masks (booleans), not weights; give model.pt or a checkpoint")
    return state


def load_into(model: nn.Module, state: dict[str, torch.Tensor], mismatch: str) -> None:
    """The state's `weight_mask` buffers, then its weights; a mismatch is `mismatch: what`."""
    suffix = f".{MASK_BUFFER}"
    masks = {k.removesuffix(suffix) + ".weight": v.bool() for k, v in state.items() if k.endswith(suffix)}
    try:
        if masks:
            attach_masks(model, masks)
    except (KeyError, ValueError) as exc:
        raise UserError(f"{mismatch}: {shorten(exc.args[0] if exc.args else exc, 120)}") from None
    problem = _first_mismatch(state, model.state_dict())
    if problem is None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            problem = first_line(exc)
    if problem is not None:
        raise UserError(f"{mismatch}: {problem}")


def _first_mismatch(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str | None:
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"no {shorten(missing[0])}{more}"
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        return f"unexpected {shorten(unexpected[0])}"
    for key, want in expected.items():
        got = state[key]
        if got.shape != want.shape:
            return f"{shorten(key)} has shape {tuple(got.shape)}, the model's is {tuple(want.shape)}"
        if want.is_floating_point() and got.dtype == torch.bool and not key.endswith(MASK_BUFFER):
            return f"{shorten(key)} holds booleans, not weights"
    return None


def _compact_architecture(source: RunSource, model: nn.Module, data: DataSplits) -> nn.Module:
    """train.compact runs saved the small model: rebuild it from the selection masks first."""
    masks_file = RunPaths(source.root).masks
    if not masks_file.is_file():
        raise UserError(f"{masks_file}: missing; a train.compact run needs it to rebuild its model")
    masks = read_tensors(masks_file, "masks file")
    # Which folds became a bias and which an AddConstant depends on the initial constants:
    # build the initial model exactly as the run did (same seed, same order).
    recipe = source.recipe
    seed_everything(recipe.seed)
    data = load_dataset(recipe.data, seed=recipe.seed, folders=recipe.search_folders())
    model = make_model(recipe.model, data.input_shape, data.num_classes, recipe.data.batch_size,
                       recipe.search_folders())  # fmt: skip
    try:
        return rebuild_compact(model, masks, data.train.head(2))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"{masks_file}: does not fit the model ({first_line(exc)})") from None


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
