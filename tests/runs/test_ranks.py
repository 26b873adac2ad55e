"""`paiexport run` under torchrun: rank 0 goes on, the other ranks only train; no resume there."""

from __future__ import annotations

import pytest
from tiny import TINY_RECIPE

from paiexport.errors import UserError
from paiexport.recipe import validate_recipe
from paiexport.runs import ranks
from paiexport.training import distributed


@pytest.fixture
def calls(monkeypatch) -> list:
    """Records joining the process group and training on another rank, instead of doing them."""
    seen: list = []
    monkeypatch.setattr(
        distributed, "init", lambda device, batch_size: seen.append(("init", device, batch_size))
    )
    monkeypatch.setattr(ranks, "train_on_other_rank", lambda recipe: seen.append(("train", recipe.name)))
    return seen


@pytest.mark.parametrize(("main", "trained"), [(True, []), (False, [("train", "tiny")])])
def test_rank_0_goes_on_and_the_others_train(calls, monkeypatch, main, trained):
    monkeypatch.setattr(distributed, "is_main", lambda: main)
    assert ranks.start_ranks(validate_recipe(TINY_RECIPE, "r.yaml")) is main
    assert calls == [("init", "cpu", 16), *trained]


def test_resume_under_torchrun_is_refused_before_joining(calls, monkeypatch):
    monkeypatch.setattr(distributed, "launched", lambda: True)
    with pytest.raises(
        UserError, match=r"^--resume: not supported under torchrun \(the ranks cannot resume in step\)$"
    ):
        ranks.start_ranks(validate_recipe(TINY_RECIPE, "r.yaml"), resume=True)
    assert calls == []
    monkeypatch.setattr(distributed, "launched", lambda: False)
    monkeypatch.setattr(distributed, "is_main", lambda: True)
    assert ranks.start_ranks(validate_recipe(TINY_RECIPE, "r.yaml"), resume=True)  # a plain run resumes
