"""`model.name: "package.module:callable"` (or `torchvision:NAME`, `timm:NAME`): the user's own network.

The callable gets `model.args` as keyword arguments, plus `num_classes`, `in_channels` and
`input_shape` from the data when it takes them and `args` does not give them.
`transformers:<class>` builds a Hugging Face model from a config or a local folder (`hf.py`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from paiexport.errors import UserError, first_line, shorten
from paiexport.importing import import_callable
from paiexport.models.checks import check_model_size
from paiexport.models.config import ModelConfig
from paiexport.models.hf import PREFIX as HF_PREFIX
from paiexport.models.hf import build_hf_model
from paiexport.models.registry import build_model

SHORTHANDS = ("torchvision:", "timm:", HF_PREFIX)


def _shorthand(spec: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The builder behind `torchvision:NAME` / `timm:NAME` and the arguments it always gets."""
    package, _, name = spec.partition(":")
    try:
        module = __import__(f"{package}.models" if package == "torchvision" else package, fromlist=["_"])
    except ImportError:
        raise UserError(
            f"model.name: {shorten(spec)} needs {package} installed (pip install {package})"
        ) from None
    if package == "timm":
        if name not in module.list_models():
            raise UserError(f"model.name: timm has no model {shorten(name)!r}")
        return (lambda **kw: module.create_model(name, pretrained=False, **kw)), {}
    if name not in module.list_models():
        raise UserError(f"model.name: torchvision.models has no builder {shorten(name)!r}")
    return (lambda **kw: module.get_model(name, **kw)), {"weights": None}  # never downloads


def _defaults(fn: Callable[..., Any], input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The data's values for the parameters the callable names (never through **kwargs)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    values = {
        "num_classes": num_classes,
        "in_channels": input_shape[0] if input_shape else 1,
        "input_shape": tuple(input_shape),
    }
    return {k: v for k, v in values.items() if k in params}


def build_factory_model(
    spec: str, args: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, folders: list[Path]
) -> nn.Module:
    """Import and call the factory; refuse anything that is not an nn.Module."""
    if spec.startswith(HF_PREFIX):
        return build_hf_model(spec, args, num_classes, folders)
    if spec.startswith(SHORTHANDS):
        fn, fixed = _shorthand(spec)
        extra = {"num_classes": num_classes}
        if spec.startswith("timm:") and input_shape:
            extra["in_chans"] = input_shape[0]
    else:
        fn, fixed = import_callable(spec, folders, "model.name"), {}
        extra = _defaults(fn, input_shape, num_classes)
    try:
        model = fn(**{**fixed, **extra, **args})
    except Exception as exc:  # the user's code: any error is bad input, reported in one line
        raise UserError(f"model.args: {shorten(spec)} raised {first_line(exc)}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() in the factory must not end the run with exit 0
        raise UserError(f"model.name: {shorten(spec)} raised {first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise UserError(
            f"model.name: {shorten(spec)} returned a {type(model).__name__}, not a torch nn.Module"
        )
    return model


def make_model(
    cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, batch_size: int, folders: list[Path]
) -> nn.Module:
    """The recipe's model: a bundled one (its size checked before allocation) or the user's factory."""
    if cfg.bundled is None:
        return build_factory_model(cfg.name, cfg.args, input_shape, num_classes, folders)
    shape_args = (cfg.bundled, cfg.args, input_shape, num_classes)
    check_model_size(*shape_args, batch_size)
    return build_model(*shape_args)
