"""Model zoo: each model has typed arguments and a builder taking the data's shape.

One module per architecture (`mlp`, `cnn1d`, `lenet5`, `resnet`), the table of bundled models
(`registry`), the checks before training (`checks`), the recipe's `model` section (`config`)
and the user's own networks (`factory`). Prunable weights are the `weight` of every Linear and
Conv layer (see `paiexport.sparsity.masks`).
"""

from paiexport.models.checks import check_model_size, check_sample_batch
from paiexport.models.cnn1d import CNN1dArgs, build_cnn1d
from paiexport.models.common import MAX_LAYERS, MAX_WIDTH
from paiexport.models.config import FACTORY_SPEC, ModelConfig
from paiexport.models.lenet5 import LeNet5Args, build_lenet5
from paiexport.models.mlp import MLPArgs, build_mlp
from paiexport.models.registry import (
    MODELS,
    MODELS_BY_NAME,
    ModelName,
    ModelSpec,
    build_model,
    parse_model_args,
)
from paiexport.models.resnet import BasicBlock, ResNet, ResNet20Args, build_resnet20

__all__ = [
    "FACTORY_SPEC",
    "MAX_LAYERS",
    "MAX_WIDTH",
    "MODELS",
    "MODELS_BY_NAME",
    "BasicBlock",
    "CNN1dArgs",
    "LeNet5Args",
    "MLPArgs",
    "ModelConfig",
    "ModelName",
    "ModelSpec",
    "ResNet",
    "ResNet20Args",
    "build_cnn1d",
    "build_lenet5",
    "build_mlp",
    "build_model",
    "build_resnet20",
    "check_model_size",
    "check_sample_batch",
    "parse_model_args",
]
