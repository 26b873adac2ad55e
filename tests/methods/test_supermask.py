"""Supermask: a Bernoulli(sigmoid(score / T)) mask in training, the top-k expectation in eval."""

import math

import torch

from paiexport.methods.supermask import SupermaskSelector


def test_supermask_samples_in_training_thresholds_in_eval():
    w = torch.tensor([[1.0, -2.0, 0.5, 4.0]])
    selector = SupermaskSelector(w, keep=2, generator=torch.Generator().manual_seed(0))
    scores = torch.tensor([[2.0, -1.0, 0.0, 1.0]])
    with torch.no_grad():
        selector.scores.copy_(scores)
    x = torch.tensor([1.0, 2.0, 3.0, -1.0])
    torch.manual_seed(0)
    (selector(w)[0] * x).sum().backward()
    t = 1 / math.sqrt(40)  # temperature 1/√(10 · fan_in), fan_in 4
    p = torch.sigmoid(scores / t)
    assert torch.allclose(selector.scores.grad, w * x * p * (1 - p) / t)  # through the sample
    samples = torch.stack([selector.mask().detach() for _ in range(2000)])
    assert torch.allclose(samples.mean(0), p, atol=0.05)
    selector.eval()
    assert selector(w).tolist() == [[1.0, 0.0, 0.0, 4.0]]  # thresholded expectation: top-2 p
    assert selector.final_mask().tolist() == [[True, False, False, True]]
