"""Magnitude pruning at initialization: scores are |θ|, ties go by position."""

import torch
from selection_context import context, two_layer_net

from paiexport.methods import make_method
from paiexport.methods.magnitude import MagnitudeConfig


def test_magnitude_scores_are_absolute_weights():
    net = two_layer_net()
    scores = make_method(MagnitudeConfig()).scores(context(net, torch.zeros(1, 3), torch.zeros(1).long()))
    assert scores["0.weight"].tolist() == [[0.5, 1.0, 0.25], [1.0, 0.5, 0.5]]
    masks = make_method(MagnitudeConfig()).select(context(net, torch.zeros(1, 3), torch.zeros(1).long()))
    # Uniform 50%: layer 0 keeps 1.0, 1.0 and the first of three 0.5s (ties go by position).
    assert masks["0.weight"].tolist() == [[True, True, False], [True, False, False]]
    assert masks["2.weight"].tolist() == [[True, True], [False, False]]
