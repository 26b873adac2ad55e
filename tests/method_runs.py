"""Running a method's `fit` for the tests of lth, gmp and magnitude_after_training: through the tiny
recipe's real trainer (`recipe_fit`), or through `ScriptedTrainer`, which trains nothing and sets
the weights a test chose, so every mask can be worked out by hand."""

from __future__ import annotations

import json
from collections.abc import Callable

import torch
from torch import nn

from paiexport.paths import RunPaths
from paiexport.recipe import validate_recipe
from paiexport.runs.stages import prepare, recipe_trainer
from paiexport.sparsity.masks import MASK_BUFFER, apply_masks, get_masks, prunable_weights
from paiexport.training.callbacks import TrainState
from paiexport.training.loop import TrainResult

Weights = dict[str, torch.Tensor]


def recipe_fit(tiny_recipe_dict, tmp_path, method: dict, **sparsity):
    """(method, ctx, trainer, calls, paths): the tiny recipe (batches of 64) with `method`; the
    trainer is the recipe's, and `calls` records each training's kwargs, masks, start and end."""
    tiny_recipe_dict["data"]["batch_size"] = 64  # step counts in the tests are for batches of 64
    raw = {**tiny_recipe_dict, "method": method}
    raw["sparsity"] = {**raw["sparsity"], **sparsity}
    recipe = validate_recipe(raw, "test")
    data, _model, method_obj, ctx = prepare(recipe)
    paths = RunPaths(tmp_path)
    inner = recipe_trainer(recipe, data, paths)
    calls: list[dict] = []

    def trainer(model, callbacks, **kwargs):
        calls.append({"start": state_of(model), "masks": get_masks(model), **kwargs})
        result = inner(model, callbacks, **kwargs)
        calls[-1]["end"] = state_of(model)
        return result

    return method_obj, ctx, trainer, calls, paths


def metrics(paths: RunPaths) -> list[dict]:
    return [json.loads(line) for line in paths.metrics.read_text().splitlines()]


def state_of(model: nn.Module) -> Weights:
    """Every parameter and buffer but the masks, copied."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith(MASK_BUFFER)}


class ScriptedTrainer:
    """Stands in for the recipe's trainer. Call k runs `steps` steps (`steps_per_epoch` each
    epoch); at step s the prunable weights become `script(k, s)` (names it leaves out, or None:
    unchanged), the masks zero the pruned ones as KeepPrunedZero would, then every callback's
    `on_step_end` runs. Records each call and the masks after every step; `logged` is the log."""

    def __init__(
        self, script: Callable[[int, int], Weights | None], steps: int = 4, steps_per_epoch: int = 4
    ) -> None:
        self.script, self.steps, self.steps_per_epoch = script, steps, steps_per_epoch
        self.calls: list[dict] = []
        self.logged: list[dict] = []

    def __call__(self, model: nn.Module, callbacks: list, *, epochs=None, tag="", checkpoint=None):
        call = len(self.calls)
        record = {"tag": tag, "epochs": epochs, "checkpoint": checkpoint, "masks": get_masks(model)}
        record |= {"callbacks": [type(c).__name__ for c in callbacks], "start": state_of(model)}
        self.calls.append(record)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        state = TrainState(
            model, opt, nn.functional.cross_entropy, self.steps_per_epoch, self.steps, self.logged.append
        )
        for cb in callbacks:
            cb.on_train_begin(state)
        record["masks_after"] = []
        for step in range(1, self.steps + 1):
            with torch.no_grad():
                for name, w in prunable_weights(model).items():
                    if (new := (self.script(call, step) or {}).get(name)) is not None:
                        w.copy_(new)
            apply_masks(model)
            state.step = step
            for cb in callbacks:
                cb.on_step_end(state)
            record["masks_after"].append(get_masks(model))
        return TrainResult()
