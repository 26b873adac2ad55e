"""Example inputs as one tensor, a tuple of positional inputs or a dict of named ones."""

from __future__ import annotations

import torch
from torch import nn

from paiexport.sparsity.examples import first_rows, forward, to_device


class TwoInputs(nn.Module):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return input_ids * (attention_mask if attention_mask is not None else 1)


def test_every_form_of_example_is_called_moved_and_cut():
    ids, mask = torch.arange(6).view(3, 2), torch.tensor([[1, 0], [1, 1], [0, 1]])
    model = TwoInputs()
    for example in (ids, (ids, mask), {"attention_mask": mask, "input_ids": ids}):
        cut = first_rows(to_device(example, "cpu"), 2)
        want = ids[:2] * (mask[:2] if not isinstance(example, torch.Tensor) else 1)
        assert torch.equal(forward(model, cut), want)
    assert isinstance(to_device([ids, mask], "cpu"), tuple) and isinstance(first_rows([ids], 1), tuple)
