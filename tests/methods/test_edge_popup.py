"""Edge-popup: the top-k |score| weights forward, every score trained straight-through."""

import torch

from paiexport.methods.edge_popup import EdgePopupSelector


def test_edge_popup_straight_through_by_hand():
    w = torch.tensor([[1.0, -2.0, 0.5]])
    selector = EdgePopupSelector(w, keep=2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        selector.scores.copy_(torch.tensor([[0.1, -0.3, 0.2]]))
    x = torch.tensor([1.0, 2.0, 3.0])
    effective = selector(w)
    assert effective.tolist() == [[0.0, -2.0, 0.5]]  # top-2 |score|: positions 1 and 2
    (effective[0] * x).sum().backward()
    # Straight-through: every score, selected or not, gets d loss / d|s| = w · x, times sign(s).
    assert selector.scores.grad.tolist() == [[1.0, 4.0, 1.5]]
    assert selector.final_mask().tolist() == [[False, True, True]]
