"""SET: drop by magnitude, regrow as many at positions its own seeded generator draws."""

import torch
from dynamic_steps import constant, linear, one_update, update_once
from torch import nn

from paiexport.methods.set import SETUpdater
from paiexport.sparsity.masks import get_masks


def test_set_grows_only_among_previously_inactive_positions():
    torch.manual_seed(0)
    for seed in range(5):
        layer = nn.Linear(20, 10, bias=False)
        with torch.no_grad():
            layer.weight.mul_(torch.rand(10, 20, generator=torch.Generator().manual_seed(seed)) < 0.3)
        before, w0 = layer.weight.detach() != 0, layer.weight.detach().clone()
        updater = SETUpdater(constant("set", drop_fraction=0.4), torch.Generator().manual_seed(seed))
        model, _, records = one_update(updater, layer, torch.randn(10, 20))
        after = get_masks(model)["0.weight"]
        grown, dropped = after & ~before, before & ~after
        assert int(grown.sum()) == int(dropped.sum()) == round(0.4 * int(before.sum()))
        # Weights active before and after keep their values: one dropped and regrown in the same
        # update would have been reset to zero.
        assert torch.equal(layer.weight.detach()[before & after], w0[before & after])
        assert torch.all(layer.weight.detach()[grown] == 0)
        assert w0[dropped].abs().max() <= w0[before & after].abs().min()  # drop by magnitude
        assert records[0]["regrown"]["0.weight"] == int(grown.sum())


def sparse_pair() -> nn.Sequential:
    """Two layers, every other weight active: a 4x6 (12 active) and a 3x4 (6 active)."""
    weights = []
    for rows, cols in ((4, 6), (3, 4)):
        values = torch.arange(1, rows * cols + 1, dtype=torch.float32).view(rows, cols) / 10
        weights.append(values * (torch.arange(rows * cols).view(rows, cols) % 2 == 0))
    return nn.Sequential(*[linear(w) for w in weights])


def set_update(seed: int, grads_seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    model = sparse_pair()
    grads = {
        n: torch.randn(w.shape, generator=torch.Generator().manual_seed(grads_seed))
        for n, w in model.state_dict().items()
    }
    updater = SETUpdater(constant("set"), torch.Generator().manual_seed(seed))
    _, records = update_once(updater, model, grads)
    return get_masks(model), records[0]


def test_set_regrows_the_inactive_positions_its_generator_draws_highest():
    """The draws: one torch.rand per layer, in layer order, from SET's generator; the inactive
    positions with the highest draws are regrown, as many per layer as it dropped."""
    before = {n: w.detach() != 0 for n, w in sparse_pair().state_dict().items()}
    masks, record = set_update(seed=7)
    generator = torch.Generator().manual_seed(7)
    drops = {"0.weight": 6, "1.weight": 3}  # half of 12 and of 6 active
    for name, was in before.items():
        draws = torch.rand(was.shape, generator=generator)
        inactive = [tuple(p) for p in (~was).nonzero().tolist()]
        by_draw = sorted(inactive, key=lambda p: -float(draws[p]))
        grown = {tuple(p) for p in (masks[name] & ~was).nonzero().tolist()}
        assert grown == set(by_draw[: drops[name]]), name
        # the smallest |w| dropped: the active positions come in increasing magnitude
        active = [tuple(p) for p in was.nonzero().tolist()]
        assert {tuple(p) for p in (was & ~masks[name]).nonzero().tolist()} == set(active[: drops[name]])
    assert record["dropped"] == record["regrown"] == drops


def test_set_is_deterministic_in_its_seed_and_blind_to_gradients():
    masks, _ = set_update(seed=3)
    again, _ = set_update(seed=3, grads_seed=1)  # other gradients: the same draws, the same masks
    other, _ = set_update(seed=4)
    assert all(torch.equal(masks[n], again[n]) for n in masks)
    assert any(not torch.equal(masks[n], other[n]) for n in masks)
