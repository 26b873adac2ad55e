"""What lth, gmp and magnitude_after_training share: magnitude masks of trained weights and the
record of a training stage. The methods themselves are tested in their own test files."""

import pytest
import torch
from selection_context import context, two_layer_net

from paiexport.errors import UserError
from paiexport.methods.post_training import magnitude_masks, stage_record
from paiexport.sparsity.masks import attach_masks
from paiexport.sparsity.types import SparsityConfig
from paiexport.training.loop import TrainResult
from paiexport.training.metrics_log import EpochRecord

X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.0, 1.0, 1.5]])


def test_magnitude_masks_keep_the_largest_weights_and_never_revive_pruned_ones():
    net = two_layer_net()  # |0.weight| = [[0.5, 1, 0.25], [1, 0.5, 0.5]]
    attach_masks(net, {"0.weight": torch.tensor([[True, False, True], [True, True, True]])})
    with torch.no_grad():
        net[0].weight[0, 1] = 50.0  # pruned: its magnitude must not bring it back
    sparsity = SparsityConfig(target=0.5, distribution="uniform", exclude=["2.*"])
    masks = magnitude_masks(net, sparsity, 0.5, "here", X)
    assert list(masks) == ["0.weight"]  # excluded layers are not pruned
    # keep 3 of 6: 1 at (1,0), then the first two 0.5s, (0,0) and (1,1), over (1,2)
    assert masks["0.weight"].tolist() == [[True, False, False], [True, True, False]]


def test_magnitude_masks_refuse_layer_collapse_unless_allowed():
    net = two_layer_net()  # global 70% keeps 3 of 10: 2, 1, 1 from both layers
    with torch.no_grad():
        net[2].weight.mul_(0.01)  # ... unless the second layer's weights are all small
    config = {"target": 0.7, "distribution": "global"}
    with pytest.raises(
        UserError, match=r"^sparsity\.allow_layer_collapse: lth level 2 pruned every weight of 2\.weight"
    ):
        magnitude_masks(net, SparsityConfig(**config), 0.7, "lth level 2", X)
    allowed = SparsityConfig(**config, allow_layer_collapse=True)
    masks = magnitude_masks(net, allowed, 0.7, "lth level 2", X)
    assert int(masks["0.weight"].sum()) == 3 and not masks["2.weight"].any()


def test_stage_record_by_hand():
    """Logits on X: [-5, 1.875] -> 1, [1.25, 0.625] -> 0, [0, 0] -> 0 (the first of a tie)."""
    net = two_layer_net()
    ctx = context(net, X, torch.tensor([1, 1, 0]))
    epoch = EpochRecord(
        epoch=1, step=1, train_loss=1.0, train_metric=0.5, val_loss=1.0, val_metric=0.5, lr=0.1, seconds=1.0
    )
    record = stage_record(ctx, TrainResult(history=[epoch, epoch]))
    assert record == {
        "sparsity": 0.0,
        "epochs": 2,
        "val_acc": pytest.approx(2 / 3),
        "test_acc": pytest.approx(2 / 3),
    }
    attach_masks(net, {"2.weight": torch.tensor([[False, True], [True, True]])})
    assert stage_record(ctx, TrainResult())["sparsity"] == pytest.approx(0.1)  # 1 of 10 weights
