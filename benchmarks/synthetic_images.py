"""resnet20 on 32x32 RGB images for the channel benchmarks (deploy_speed, train_compact).

The bundled datasets are 1-D or 8x8 today, so the images are the library's `synthetic`
dataset with a 3x32x32 shape (Gaussian blobs around 4 class means): right for timing, easy to
learn. The model, selection (SynFlow, 75% channel sparsity) and training are the library's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import onnx
import torch
from torch import nn

from paiexport.data import DatasetName, DataSplits, load_data
from paiexport.methods import METHODS, SelectionContext, make_method
from paiexport.models import ModelName, build_model
from paiexport.sparsity.masks import attach_masks
from paiexport.sparsity.types import SparsityConfig
from paiexport.training.callbacks import KeepPrunedZero
from paiexport.training.config import CheckpointChoice, OptimizerConfig, TrainConfig
from paiexport.training.loop import TrainResult, train

SHAPE = (3, 32, 32)
CHANNEL75 = SparsityConfig(target=0.75, distribution="uniform", structure="channel", channel_reduce="sum")


def image_data(samples: int, seed: int = 0) -> DataSplits:
    return load_data(
        DatasetName.synthetic, seed=seed, val_fraction=0.1, synthetic_samples=samples, synthetic_shape=SHAPE
    )


def resnet20(data: DataSplits, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelName.resnet20, {}, data.input_shape, data.num_classes)


def synflow_channel75(model: nn.Module, data: DataSplits) -> None:
    """Attach SynFlow's 75% channel masks (the synflow_channel75 recipe's selection)."""
    method = make_method(METHODS["synflow"].config_class())
    attach_masks(model, method.select(SelectionContext(model, data, CHANNEL75, 64)))


def fit(
    model: nn.Module, data: DataSplits, epochs: int, seed: int, masked: bool
) -> tuple[TrainResult, float]:
    """Train with the library's loop; returns the result and the wall time per epoch."""
    cfg = TrainConfig(
        epochs=epochs, optimizer=OptimizerConfig(lr=0.05, momentum=0.9), checkpoint=CheckpointChoice.last
    )
    with tempfile.TemporaryDirectory(prefix="paiexport-bench-") as tmp:
        start = time.perf_counter()
        result = train(
            model,
            data,
            cfg,
            batch_size=64,
            seed=seed,
            metrics_path=Path(tmp) / "m.jsonl",
            checkpoint_dir=Path(tmp) / "ckpt",
            callbacks=[KeepPrunedZero()] if masked else [],
        )
    return result, (time.perf_counter() - start) / max(epochs, 1)


def resnet20_75_onnx(epochs: int, samples: int) -> tuple[DataSplits, dict[str, onnx.ModelProto]]:
    """The resnet20 run the speed benchmarks share: synflow 75% by channels, `epochs` masked
    epochs, then its dense and compact float graphs (compact with `space_to_depth` 16)."""
    from paiexport.export.compact import compact_model
    from paiexport.export.space_to_depth import space_to_depth
    from paiexport.export.torch_export import to_onnx
    from paiexport.sparsity.masks import strip_masks

    data = image_data(samples)
    model = resnet20(data, seed=0)
    synflow_channel75(model, data)
    fit(model, data, epochs, seed=0, masked=True)
    model = strip_masks(model.cpu()).eval()
    compact, _ = space_to_depth(to_onnx(compact_model(model, SHAPE).model, SHAPE, 18), 16)
    return data, {"dense": to_onnx(model, SHAPE, 18), "compact": compact}
