"""`paiexport export`: the ONNX files of a finished run again, without retraining.

A run folder (or one of its checkpoints, `checkpoints/best.pt` or a phase's such as
`checkpoints/level2/best.pt`) holds everything needed: `recipe.yaml` rebuilds the model and the
checkpoint's state dict (with its `weight_mask` buffers) restores weights and masks (`model.pt`,
the exported weights, when present). Then the stages `run` ends with (`runs.ship.ship`) write the
files: the same metadata, threads, variants, validation and deploy choice as the run's. The files
go to `RUN/export/` by default, staged and moved into place only when all succeeded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from paiexport.bench.runtimes import make_runtimes
from paiexport.errors import UserError, shorten
from paiexport.paths import RunPaths
from paiexport.recipe import Override, Recipe, apply_overrides, read_recipe_file, validate_recipe
from paiexport.reporting.assemble import validation_section
from paiexport.runs.restore import restore_model
from paiexport.runs.ship import ship
from paiexport.runs.stages import Timer, recipe_rules
from paiexport.runs.staging import staged_run_dir
from paiexport.training.config import CheckpointChoice

IN_PROCESS = re.compile(r"paiexport\.importing:registered_\d+")  # api.run_recipe's model and datasets


@dataclass(frozen=True)
class RunSource:
    root: Path
    checkpoint: Path
    recipe: Recipe


def factory_modules(model_name: str | None, data_name: str | None, rules: Sequence[str] = ()) -> list[str]:
    """The modules these `model.name` / `data.name` factories (and `sparsity.rules`) import (and so run)."""
    from paiexport.data.config import BUNDLED, FORMATS
    from paiexport.models.factory import SHORTHANDS
    from paiexport.models.registry import MODELS_BY_NAME

    specs = []
    if model_name is not None and model_name not in MODELS_BY_NAME and not model_name.startswith(SHORTHANDS):
        specs.append(model_name)
    if data_name is not None and data_name not in BUNDLED | FORMATS:
        specs.append(data_name)
    specs.extend(rules)
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


def recorded_folder(paths: RunPaths) -> Path:
    """Where the run's recipe was read from (its factories and data live there) when that folder
    still exists, else the run folder itself."""
    try:
        with paths.recipe_folder.open("rb") as f:  # one line: a path, never a large file
            folder = Path(f.read(4096).decode("utf-8").strip())
    except (OSError, UnicodeDecodeError, ValueError):  # ValueError: a NUL in the path
        return paths.root
    return folder if folder.is_absolute() and folder.is_dir() else paths.root


def locate_run(path: Path, overrides: Sequence[Override], trust_code: bool = False) -> RunSource:
    """A run folder or a checkpoint inside one -> its recipe (with overrides) and checkpoint.

    A recipe whose model or data is a factory is refused unless `trust_code` (nothing imported).
    """
    if path.is_dir():
        root, checkpoint = path, None
    elif path.is_file() and path.suffix == ".pt":
        root, checkpoint = RunPaths.holding(path).root, path
    else:
        raise UserError(f"{path}: expected a run folder or a checkpoint (.pt) file")
    recipe_path = RunPaths(root).recipe
    if not recipe_path.is_file():
        raise UserError(f"{path}: no recipe.yaml in the run folder {root}")
    recipe = validate_recipe(apply_overrides(read_recipe_file(recipe_path), overrides), str(recipe_path))
    modules = factory_modules(recipe.model.name, recipe.data.name, recipe.sparsity.rules)
    check_trusted(modules, recipe_path, trust_code)
    recipe._folder = recorded_folder(RunPaths(root))
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


def default_export_dir(source: RunSource) -> Path:
    return RunPaths(source.root).export


def reexport(source: RunSource, out_dir: Path, console: Console, *, force: bool = False) -> dict[str, Any]:
    """Export, validate (and, for `auto`, benchmark) the recipe's formats into `out_dir`.

    `out_dir` is written like a run folder: staged, moved into place when complete, and
    replaced only with `force`. Never the run folder itself: its report describes its files.
    """
    if out_dir.resolve() == source.root.resolve():
        raise UserError(f"--out {out_dir}: the run folder's report.json describes its files; choose another")
    recipe = source.recipe
    make_runtimes(recipe.bench.runtimes, "bench.runtimes")  # a runtime not installed: exit 2 now
    with recipe_rules(recipe):
        return _reexport(source, out_dir, console, force)


def _reexport(source: RunSource, out_dir: Path, console: Console, force: bool) -> dict[str, Any]:
    recipe = source.recipe
    restored = restore_model(recipe, source.root, source.checkpoint)
    model, data = restored.model, restored.data
    with staged_run_dir(out_dir, force) as paths:
        timer = Timer(console)
        shipped = ship(recipe, model, data, paths, timer, restored.threads, restored.selection, bench=False)
    return {
        "torch_accuracy": shipped.torch_accuracy,  # the primary metric (classification: accuracy)
        "torch_metrics": shipped.torch_metrics,
        "files": {v: str(out_dir / p.name) for v, p in shipped.files.items()},
        "validation": validation_section(shipped.checks, shipped.runtimes),
        "deploy": shipped.deploy,
        "int8_used": shipped.int8_used,
        "residual_sums": shipped.residual_sums,
    }
