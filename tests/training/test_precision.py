"""train.precision / channels_last / compile / device: masks stay exact in every precision."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tiny import train_briefly
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.models import ModelName, build_model
from paiexport.sparsity.masks import attach_masks, enforce_after_step, prunable_weights
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.config import OptimizerConfig, TrainConfig
from paiexport.training.precision import Precision, PrecisionName, prepare_input, prepare_model

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")


class CheckZeroEveryStep(TrainCallback):
    """Asserts after every optimizer step that pruned weights are exactly zero."""

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks, self.steps = masks, 0

    def on_step_end(self, state: TrainState) -> None:
        for name, w in prunable_weights(state.model).items():
            assert torch.all(w[~self.masks[name].to(w.device)] == 0), (name, state.step)
        self.steps += 1


def _masked_run(tmp_path: Path, precision: str, device: str = "cpu", **train_args: object) -> nn.Module:
    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.cnn1d, {"channels": [4, 8], "hidden": 16}, data.input_shape, 4)
    g = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(w.shape, generator=g) < 0.3 for n, w in prunable_weights(model).items()}
    attach_masks(model, masks)
    before = {n: w.detach().clone() for n, w in prunable_weights(model).items()}
    check = CheckZeroEveryStep(masks)
    cfg = TrainConfig(
        epochs=1, optimizer=OptimizerConfig(lr=0.05), precision=precision, device=device, **train_args
    )
    train_briefly(model, data, cfg, tmp_path, [KeepPrunedZero(), check])
    assert check.steps == 10  # 307 training samples (512 - 128 test - 77 val) / 32 per batch
    changed = [not torch.equal(w.cpu(), before[n]) for n, w in prunable_weights(model).items()]
    assert all(changed), "every layer trained"
    return model


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_masks_exact_after_every_step_in_every_precision(tmp_path: Path, precision: str) -> None:
    model = _masked_run(tmp_path, precision)
    assert all(w.dtype == torch.float32 for w in prunable_weights(model).values())  # autocast casts ops only


def test_fp16_skipped_step_keeps_pruned_weights_zero() -> None:
    """An overflowing fp16 step is skipped by the GradScaler: no weight moves, no hook needed."""
    model = nn.Linear(2, 2, bias=False)
    attach_masks(model, {"weight": torch.tensor([[True, False], [False, True]])})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    enforce_after_step(optimizer, model)
    amp = Precision(PrecisionName.fp16, "cpu")
    before = model.weight.detach().clone()
    with amp.autocast():
        loss = model(torch.ones(1, 2)).sum() * 1e38  # x 65536 (the initial scale) overflows
    amp.backward(loss)
    amp.step(optimizer)
    assert torch.equal(model.weight, before)
    assert model.weight[0, 1] == 0 and model.weight[1, 0] == 0
    assert amp.scaler.get_scale() == 32768.0  # halved after the skipped step


def test_channels_last_only_for_conv2d_nets() -> None:
    conv = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten())
    prepare_model(conv, True)
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv[0].weight.is_contiguous()  # 2 input channels, 3x3: the formats differ
    x = prepare_input(torch.rand(1, 2, 4, 4), True)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    flat = torch.rand(2, 5)
    assert prepare_input(flat, True) is flat


def test_channels_last_training_keeps_masks_exact(tmp_path: Path) -> None:
    _masked_run(tmp_path, "fp32", channels_last=True)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")


@pytest.mark.skipif(
    os.environ.get("PAIEXPORT_TEST_COMPILE") != "1",
    reason="torch.compile needs ~40 s on a loaded 2-core CPU; set PAIEXPORT_TEST_COMPILE=1 to run",
)
def test_compile_trains_with_exact_masks(tmp_path: Path) -> None:
    _masked_run(tmp_path, "fp32", compile=True)


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_keeps_masks_exact(tmp_path: Path, precision: str) -> None:
    model = _masked_run(tmp_path, precision, device="cuda")
    assert next(model.parameters()).is_cuda
