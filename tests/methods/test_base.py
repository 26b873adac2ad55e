"""What every pruning method is: a registered class whose docs cite its paper."""

import importlib

import pytest

from paiexport.methods import METHODS


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"dense"}))
def test_every_method_cites_its_paper(name):
    module = importlib.import_module(METHODS[name].__module__)
    assert "Reference:" in (module.__doc__ or "") + (METHODS[name].__doc__ or "")
