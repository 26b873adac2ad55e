"""restore.py: a run's trained model rebuilt from its recipe and weights, or a one-line refusal."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from rich.console import Console
from tiny import TINY_RECIPE

import paiexport.runs.restore as restore
from paiexport.errors import UserError
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe, validate_recipe
from paiexport.runs.restore import restore_model
from paiexport.runs.stages import Timer, select_and_train


def tiny(**train: object) -> Recipe:
    raw = copy.deepcopy(TINY_RECIPE)
    raw["train"].update(epochs=1, **train)
    return validate_recipe(raw, "tiny.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The stages of `paiexport run` up to model.pt (no export): the run folder and its model."""
    paths = RunPaths(tmp_path_factory.mktemp("restore") / "run")
    model, *_ = select_and_train(tiny(), paths, Timer(Console(file=io.StringIO())))
    return paths, model


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    ours, theirs = a.state_dict(), b.state_dict()
    return list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("file", ["model.pt", "checkpoints/best.pt"])
def test_the_run_model_comes_back_with_equal_weights(run, file):
    """model.pt, or a checkpoint whose `weight_mask` buffers are baked in again."""
    paths, model = run
    restored = restore_model(tiny(), paths.root, paths.root / file)
    assert same_weights(restored.model, model) and not restored.model.training
    assert (restored.threads, restored.selection) == (1, None)
    assert len(restored.data.test) == 128  # the run's data, rebuilt from the recipe


def saved(tmp_path, obj, name="other.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_a_wrong_file_is_refused_before_anything_is_built(run, tmp_path, monkeypatch):
    paths, _model = run
    monkeypatch.setattr(restore, "build", lambda recipe: pytest.fail("built a model for a bad file"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    cases = {
        junk: f"{junk}: not a readable model state dict (",
        paths.masks: f"{paths.masks}: holds masks (booleans), not weights; give model.pt or a checkpoint",
        saved(tmp_path, [1, 2], "list.pt"): "list.pt: not a model state dict (names -> tensors), but a list",
        saved(tmp_path, {}, "empty.pt"): "empty.pt: not a model state dict (names -> tensors), but a dict",
        saved(tmp_path, {"w": 1}, "int.pt"): "int.pt: not a model state dict (names -> tensors)",
    }
    for file, message in cases.items():
        with pytest.raises(UserError) as refused:
            restore_model(tiny(), paths.root, file)
        assert message in str(refused.value) and "\n" not in str(refused.value)


def mismatched(model, change) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    change(state)
    return state


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s.pop("out.bias"), "no out.bias"),
        (lambda s: s.update(extra=torch.ones(1)), "unexpected extra"),
        (
            lambda s: s.update({"fc1.weight": torch.ones(64, 40)}),
            "fc1.weight has shape (64, 40), the model's is (32, 40)",
        ),
        (
            lambda s: s.update({"fc2.bias": torch.ones(16, dtype=torch.bool)}),
            "fc2.bias holds booleans, not weights",
        ),
    ],
    ids=["missing", "unexpected", "shape", "booleans"],
)
def test_weights_of_another_model_are_refused_naming_the_recipe(run, tmp_path, change, problem):
    paths, model = run
    file = saved(tmp_path, mismatched(model, change))
    with pytest.raises(UserError) as refused:
        restore_model(tiny(), paths.root, file)
    assert str(refused.value) == f"{file}: does not fit the model of {paths.recipe}: {problem}"


def test_a_compact_run_without_its_masks_file_is_refused(run, tmp_path):
    paths, _model = run
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["train"].update(epochs=1, compact=True)
    recipe["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    folder = tmp_path / "compact"
    folder.mkdir()
    with pytest.raises(
        UserError, match=r"masks\.pt: missing; a train\.compact run needs it to rebuild its model$"
    ):
        restore_model(validate_recipe(recipe, "c.yaml"), folder, paths.model_state)
