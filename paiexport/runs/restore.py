"""A finished run's trained model, rebuilt from its recipe and weights for `paiexport export`.

The model is built by the very stage `paiexport run` starts with (`stages.build`: same seed,
same data, same initial model), its thread count by `stages.fit_threads`; `train.compact`
runs rebuild the small architecture from masks.pt before the weights are loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from paiexport.data import DataSplits
from paiexport.errors import UserError, first_line, shorten
from paiexport.methods import make_method
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe
from paiexport.runs.stages import build, fit_threads
from paiexport.sparsity.masks import MASK_BUFFER, attach_masks, strip_masks
from paiexport.training.compact import CompactTraining, compact_example, rebuild_compact


@dataclass(frozen=True)
class Restored:
    """The trained model (masks baked in) and what the run's later stages took with it."""

    model: nn.Module
    data: DataSplits
    threads: int  # torch threads, as the run resolved `train.threads`
    selection: float | None  # train.compact: the selection's sparsity (the model has no masks)


def restore_model(recipe: Recipe, root: Path, checkpoint: Path) -> Restored:
    """The trained model with its masks baked in, exactly as `paiexport run` exported it."""
    state = read_weights(checkpoint)  # before any work: masks.pt or junk fails at once
    masks_file = RunPaths(root).masks
    masks = read_selection(masks_file) if recipe.train.compact else None
    data, model = build(recipe)
    threads = fit_threads(recipe, model, data)
    selection = None
    if masks is not None:
        compacted = compact_architecture(masks_file, masks, model, data)
        model, selection = compacted.model, compacted.report()["selection_sparsity"]
    make_method(recipe.method).replay_layout(model, recipe.sparsity)
    load_into(model, state, f"{checkpoint}: does not fit the model of {RunPaths(root).recipe}")
    return Restored(strip_masks(model).eval(), data, threads, selection)


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


def read_selection(masks_file: Path) -> dict[str, torch.Tensor]:
    """masks.pt of a train.compact run: the selection its small model was built from."""
    if not masks_file.is_file():
        raise UserError(f"{masks_file}: missing; a train.compact run needs it to rebuild its model")
    return read_tensors(masks_file, "masks file")


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


def compact_architecture(
    masks_file: Path, masks: dict[str, torch.Tensor], model: nn.Module, data: DataSplits
) -> CompactTraining:
    """train.compact runs saved the small model: shrink the freshly built `model` with the
    selection, as training did (which folds became a bias and which an AddConstant depends
    on the initial constants, so `model` must be `build`'s)."""
    try:
        return rebuild_compact(model, masks, compact_example(data.train))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"{masks_file}: does not fit the model ({first_line(exc)})") from None
