"""Channel dependency graph: the groups found, and exact compaction through them."""

from __future__ import annotations

import pytest
import torch
from nets import (
    BottleneckResNet,
    DenseNetish,
    MobileNetV2ish,
    RolledRes,
    SEResNet,
    TinyRes,
    TinyTransformer,
    randomize_constants,
)
from torch import nn

from paiexport.models import ModelName, build_model
from paiexport.sparsity.depgraph import DependencyGraph, build_graph
from paiexport.sparsity.groups import group_masks
from paiexport.sparsity.masks import prunable_weights
from paiexport.sparsity.shrink import shrink_model


def random_keep(graph: DependencyGraph, g: torch.Generator, single: int) -> dict[int, torch.Tensor]:
    """Keep each channel with probability 1/2; the `single`-th prunable group keeps exactly one."""
    keep = {}
    for k, i in enumerate(graph.prunable):
        kept = torch.rand(graph.groups[i].size, generator=g) > 0.5
        if k == single:
            kept[:] = False
            kept[-1] = True
        kept[0] |= not kept.any()
        keep[i] = kept
    return keep


def resnet20() -> nn.Module:
    return build_model(ModelName.resnet20, {"width": 4, "blocks_per_stage": 1}, (3, 8, 8), 5)


CASES = {
    "resnet20": (resnet20, (3, 8, 8)),
    "bottleneck_resnet": (BottleneckResNet, (3, 16, 16)),
    "mobilenetv2": (MobileNetV2ish, (3, 16, 16)),
    "densenet": (DenseNetish, (3, 8, 8)),
    "transformer": (TinyTransformer, (5, 6)),
    "squeeze_excite": (SEResNet, (3, 8, 8)),
    "mlp": (lambda: build_model(ModelName.mlp, {"hidden": [16, 8]}, (40,), 5), (40,)),
    "cnn1d": (
        lambda: build_model(ModelName.cnn1d, {"channels": [4, 4, 4], "hidden": 8}, (1, 40), 5),
        (1, 40),
    ),
    "lenet5": (lambda: build_model(ModelName.lenet5, {}, (1, 8, 8), 5), (1, 8, 8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_shrink_matches_masked_model(case: str) -> None:
    build, shape = CASES[case]
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build().eval()
    randomize_constants(model, g)
    example = torch.randn(4, *shape, generator=g)
    graph = build_graph(model, example)
    assert len(graph.prunable) >= 2 and not graph.notes
    keep = random_keep(graph, g, single=1)
    masks = group_masks(graph, keep, prunable_weights(model))
    with torch.no_grad():
        for name, w in prunable_weights(model).items():
            w.mul_(masks[name])
    result = shrink_model(model, graph, example)
    expected = {i: int((~k).sum()) for i, k in keep.items() if not k.all()}
    assert result.removed == expected
    assert result.params_after < result.params_before
    x = torch.randn(6, *shape, generator=g)
    with torch.no_grad():
        diff = (model(x) - result.model(x)).abs().max()
    assert diff <= 1e-4


def test_groups_of_a_residual_block() -> None:
    graph = build_graph(TinyRes(), torch.zeros(1, 2, 6, 6))
    found = {frozenset((m.module, m.role) for m in g.members): (g.size, g.prunable) for g in graph.groups}
    residual = {
        ("conv0", "out"),
        ("bn0", "norm"),
        ("conv1", "in"),
        ("conv2", "out"),
        ("bn2", "norm"),
        ("fc", "in"),
    }
    assert found == {
        frozenset(residual): (8, True),
        frozenset({("conv1", "out"), ("bn1", "norm"), ("conv2", "in")}): (4, True),
        frozenset({("fc", "out")}): (3, False),
    }


def test_unknown_op_leaves_its_group_dense() -> None:
    model = RolledRes().eval()
    graph = build_graph(model, torch.zeros(1, 2, 6, 6))
    inner = next(g for g in graph.groups if any(m.module == "conv1" and m.role == "out" for m in g.members))
    assert not inner.prunable and "roll" in inner.note
    with torch.no_grad():  # rows zeroed in a blocked group are not removed: roll moves them
        model.conv1.weight[:2] = 0
        model.conv1.bias[:2] = 0
    x = torch.randn(3, 2, 6, 6)
    result = shrink_model(model, graph, x)
    assert result.model.conv1.out_channels == 4 and result.removed == {}
    assert torch.allclose(model(x), result.model(x), atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_inputs_and_logits_never_prunable(case: str) -> None:
    build, shape = CASES[case]
    model = build().eval()
    graph = build_graph(model, torch.zeros(2, *shape))
    last = list(prunable_weights(model))[-1].removesuffix(".weight")
    first = next(iter(prunable_weights(model))).removesuffix(".weight")
    for i in graph.prunable:
        members = {(m.module, m.role) for m in graph.groups[i].members}
        assert (last, "out") not in members and (first, "in") not in members


def test_untraceable_model_gives_a_note() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) if x.sum() > 0 else x

    graph = build_graph(Branchy(), torch.zeros(1, 3))
    assert graph.groups == [] and graph.notes[0].startswith("cannot trace: ")
