"""The test split `paiexport validate` checks a file on, prepared exactly as the run prepared it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import torch
import yaml
from pydantic import ValidationError

from paiexport import recipe_yaml
from paiexport.data import DataConfig, Split, load_dataset
from paiexport.data.transforms import normalize
from paiexport.errors import UserError, shorten
from paiexport.export.metadata import read_metadata, read_normalization
from paiexport.tasks import Task


def validation_data(name: str | None, path: str | None = None, recipe: Path | None = None) -> DataConfig:
    """`--data NAME [--data-path PATH]`, or the `data:` section of `--recipe RUN/recipe.yaml`."""
    raw: dict[str, Any] = {}
    if recipe is not None:
        raw = _recipe_data(recipe)
        where = f"--recipe {recipe}: data"
    if name is not None:
        raw["name"] = name
    if path is not None:
        raw["path"] = path
    if "name" not in raw:
        raise UserError("--data: give a dataset name (or --recipe RUN/recipe.yaml)")
    raw["augment"] = {}  # test data is never augmented
    try:
        return DataConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "data"
        prefix = where if recipe is not None else "--data"
        raise UserError(
            f"{prefix}.{field}: {shorten(err['msg'].removeprefix('Value error, '), 200)}"
        ) from None


def _recipe_data(recipe: Path) -> dict[str, Any]:
    try:
        loaded = recipe_yaml.safe_load(recipe.read_text())  # bounded: the file is the user's
    except recipe_yaml.RecipeYAMLError as exc:
        raise UserError(f"--recipe {recipe}: recipe refused: {exc}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"--recipe {recipe}: cannot read it ({type(exc).__name__})") from None
    section = loaded.get("data") if isinstance(loaded, dict) else None
    if not isinstance(section, dict):
        raise UserError(f"--recipe {recipe}: has no data section")
    if section.get("path") and not Path(section["path"]).is_absolute():
        relative = recipe.resolve().parent / section["path"]
        section["path"] = str(relative) if relative.exists() else section["path"]
    return dict(section)


def eval_split(model: onnx.ModelProto, cfg: DataConfig, seed: int) -> Split:
    """The test split, prepared as the run prepared it (classification targets)."""
    return eval_splits(model, cfg, seed)[0]


def eval_splits(
    model: onnx.ModelProto, cfg: DataConfig, seed: int, task: Task | None = None
) -> tuple[Split, torch.Tensor]:
    """The test split (and the training targets, for the task's baseline), targets checked by `task`.

    The file's recorded normalization (`paiexport.input_mean/std`) wins over the section's."""
    recorded = read_normalization(read_metadata(model))
    if cfg.name == "imagefolder" and cfg.image_size is None:
        cfg = cfg.model_copy(update=_image_options(model))
    if recorded is not None:
        cfg = cfg.model_copy(update={"normalize": "none"})
    data = load_dataset(cfg, seed=seed, task=task)
    test = data.test
    x = test.x if recorded is None else normalize(test.x, *recorded)
    train_y = data.train.y if task is not None and task.baseline_needs_train else test.y
    return Split(x, test.y), train_y


def _image_options(model: onnx.ModelProto) -> dict[str, Any]:
    """Image size and channels an image folder must be decoded to, read off the graph's input."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] if model.graph.input else []
    if len(dims) != 4 or dims[2] != dims[3] or dims[2] <= 0:
        return {}
    return {"image_size": dims[2], "grayscale": dims[1] == 1}
