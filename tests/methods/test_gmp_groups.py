"""gmp by parameter group keeps the same counts and breaks ties like every other selection."""

import torch
from torch import nn

from paiexport.methods.dynamic import drop_count
from paiexport.methods.gmp_groups import GMPGroup, GroupedPruning
from paiexport.sparseml.schedule import pruned_count
from paiexport.sparsity.allocation import allocate_masks, layer_keep_counts, total_keep
from paiexport.sparsity.types import Distribution
from paiexport.training.callbacks import TrainState


def test_allocation_gmp_groups_and_dynamic_keep_the_same_of_3_at_half():
    """n = 3 weights, fraction 0.5: every place keeps 2 (they kept 2, 1 and 1 before)."""
    scores = {"a": torch.tensor([3.0, 2.0, 1.0])}
    assert total_keep({"a": 3}, 0.5) == 2 and layer_keep_counts({"a": (3,)}, 0.5, Distribution.uniform) == {
        "a": 2
    }
    assert int(allocate_masks(scores, 0.5, Distribution.global_)["a"].sum()) == 2
    # gmp groups (SparseML's gradual pruning): zeroes removed(3, 0.5) = 1
    assert pruned_count(3, 0.5) == 1
    model = nn.Sequential(nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 1.0, 2.0]]))
    mask = _gmp_group_mask(model, 0.5)
    assert mask.tolist() == [[True, False, True]]
    # dynamic: of 3 active weights, a drop fraction of 0.5 drops 1 and keeps 2
    assert drop_count(torch.tensor([True, True, True, False, False, False]), 0.5) == 1


def _gmp_group_mask(model: nn.Module, target: float) -> torch.Tensor:
    """The mask a `layer` GMP group sets on `0.weight` for `target`."""
    group = GMPGroup(
        params=["0.weight"], final_sparsity=target, start_epoch=0, end_epoch=1, update_frequency=1
    )
    pruning = GroupedPruning([group])
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    state = TrainState(model, opt, nn.functional.cross_entropy, 1, 2, lambda record: None)
    pruning.on_train_begin(state)
    pruning._update(state, 0, group, target)
    return model[0].weight_mask.bool()


def test_gmp_groups_break_ties_like_top_k_mask():
    """Eight equal |w|, two to prune: the lower indices stay (torch.topk pruned 5 and 6)."""
    model = nn.Sequential(nn.Linear(8, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.5)
    assert _gmp_group_mask(model, 0.25).tolist() == [[True] * 6 + [False] * 2]
