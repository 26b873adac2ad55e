"""`model.name: "transformers:<class>"`: a Hugging Face model from a config, or from a local folder.

`model.args` holds exactly one of
- `config: {...}`: the model's configuration, randomly initialized, nothing downloaded. An Auto
  class (`transformers:AutoModelForSequenceClassification`) needs `model_type` (e.g. `bert`); a
  model class (`transformers:BertForSequenceClassification`) takes its own config's keys. Keys
  the config does not know are refused (transformers would keep a typo silently).
- `pretrained: PATH`: a folder written by `save_pretrained` (a relative path is looked up beside
  the recipe, then in the current folder), read with `local_files_only`; only `.safetensors`
  weights are loaded (never pickled ones).

transformers' `Conv1D` layers (GPT-2 and its kin: a Linear with its weight stored [in, out])
become exactly equivalent `nn.Linear`s on both paths (`linear_conv1d`: weight transposed, the
same bias parameter, same requires_grad, device and dtype), so that their weights are maskable
and their heads and neurons prunable like any Linear's. A checkpoint saved before this holds
Conv1D's [in, out] weights and is refused as not fitting.

`trust_remote_code` is never enabled: a config that needs it (`auto_map`) is refused. Unless the
config says otherwise, a `*For*Classification` class gets `num_labels` from the data, and
`use_cache` is off (the run trains and exports logits, not a generation cache). The forward
returns a `ModelOutput`, a dict subclass: the task reads its first key (`logits`), or the key
`task.output` names. The size of a config-built model is checked on the meta device first.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from paiexport.errors import UserError, did_you_mean, first_line, shorten
from paiexport.importing import user_code
from paiexport.models.checks import available_bytes

PREFIX = "transformers:"
EXTRA = "pip install 'paiexport[hf]'"
ARG_KEYS = ("config", "pretrained")
_INTERNAL = {"_name_or_path", "transformers_version", "model_type", "auto_map"}


def check_hf_args(args: dict[str, Any]) -> None:
    """`model.args` of a transformers model, checked without importing transformers (ValueError)."""
    unknown = sorted(shorten(k) for k in set(args) - set(ARG_KEYS))
    if unknown:
        raise ValueError(f"args: transformers models take config or pretrained, not {', '.join(unknown)}")
    if len(args) != 1:
        raise ValueError("args: give exactly one of config (a mapping) or pretrained (a folder)")
    if "config" in args and not isinstance(args["config"], dict):
        raise ValueError("args.config: expected a mapping of config keys (e.g. {model_type: bert})")
    if "pretrained" in args and not isinstance(args["pretrained"], str):
        raise ValueError("args.pretrained: expected the path of a save_pretrained folder")


def _transformers(spec: str) -> ModuleType:
    try:
        import transformers
    except ImportError:
        raise UserError(f"model.name: {shorten(spec)} needs transformers ({EXTRA})") from None
    return transformers


def _model_class(tf: ModuleType, spec: str) -> type:
    name = spec.removeprefix(PREFIX)
    try:
        cls = getattr(tf, name, None)
    except Exception:  # transformers' lazy module raises when a class needs a missing backend
        cls = None
    auto = isinstance(cls, type) and name.startswith("Auto") and hasattr(cls, "from_config")
    if not (auto or (isinstance(cls, type) and issubclass(cls, tf.PreTrainedModel))):
        raise UserError(f"model.name: transformers has no model class {shorten(name)!r}")
    return cls


def _refuse_remote_code(raw: dict[str, Any], where: str) -> None:
    if "auto_map" in raw or raw.get("trust_remote_code"):
        raise UserError(
            f"{where}: needs trust_remote_code (custom model code), which paiexport never enables"
        )


def _config_class(tf: ModuleType, cls: type, model_type: object) -> type:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type is not None and (not isinstance(model_type, str) or model_type not in CONFIG_MAPPING):
        raise UserError(f"model.args.config: unknown model_type {shorten(model_type)!r}")
    if cls.__name__.startswith("Auto"):
        if model_type is None:
            raise UserError(f"model.args.config: {cls.__name__} needs model_type (e.g. model_type: bert)")
        return CONFIG_MAPPING[model_type]
    config_class = cls.config_class
    if model_type is not None and model_type != config_class.model_type:
        raise UserError(
            f"model.args.config: model_type {shorten(model_type)!r} does not fit {cls.__name__} "
            f"({config_class.model_type})"
        )
    return config_class


def _known_keys(config_class: type) -> set[str]:
    keys = set(config_class().to_dict()) | set(inspect.signature(config_class.__init__).parameters)
    return (keys | {"num_labels", "attn_implementation"}) - _INTERNAL - {"self", "kwargs"}


def _defaults(cls: type, known: set[str], raw: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """num_labels from the data for classification heads, no generation cache; the config wins."""
    extra: dict[str, Any] = {}
    if "Classification" in cls.__name__ and not {"num_labels", "id2label"} & set(raw):
        extra["num_labels"] = num_classes
    if "use_cache" in known:
        extra["use_cache"] = False
    return {**extra, **raw}


def _config(tf: ModuleType, cls: type, spec: str, raw: dict[str, Any], num_classes: int) -> Any:
    _refuse_remote_code(raw, "model.args.config")
    raw = dict(raw)
    config_class = _config_class(tf, cls, raw.pop("model_type", None))
    known = _known_keys(config_class)
    for key in raw:
        if key not in known:
            hint = did_you_mean(str(key), sorted(known))
            raise UserError(
                f"model.args.config: unknown key {shorten(key)!r} for {config_class.model_type}{hint}"
            )
    with user_code(f"model.args: {shorten(spec)}"):
        return config_class(**_defaults(cls, known, raw, num_classes))


def _from_config(cls: type, config: Any) -> nn.Module:
    return cls.from_config(config) if cls.__name__.startswith("Auto") else cls(config)


def _check_size(cls: type, config: Any, spec: str) -> None:
    """Refuse, before allocating it, a model that would not fit in memory to train."""
    with user_code(f"model.args: {shorten(spec)}"), torch.device("meta"):
        params = sum(p.numel() for p in _from_config(cls, config).parameters())
    needed, available = 16 * params, available_bytes()  # weights, gradients, two optimizer moments
    if needed > available:
        raise UserError(
            f"model.args.config: {shorten(spec)} needs about {needed / 2**30:.1f} GiB to train "
            f"({params:,} parameters); {available / 2**30:.1f} GiB available"
        )


def _folder(text: str, folders: list[Path]) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = next((base / path for base in [*folders, Path.cwd()] if (base / path).exists()), path)
    if not (path / "config.json").is_file():
        raise UserError(f"model.args.pretrained: {shorten(text)}: not a folder with config.json")
    return path


def _pretrained(tf: ModuleType, cls: type, spec: str, text: str, folders: list[Path]) -> nn.Module:
    path = _folder(text, folders)
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"model.args.pretrained: {shorten(text)}/config.json: {first_line(exc)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"model.args.pretrained: {shorten(text)}/config.json is not a mapping")
    _refuse_remote_code(raw, f"model.args.pretrained: {shorten(text)}")
    if not any(path.glob("*.safetensors")):
        raise UserError(
            f"model.args.pretrained: {shorten(text)} has no .safetensors weights "
            "(pickled weights are never loaded)"
        )
    local = {"local_files_only": True, "trust_remote_code": False}
    with user_code(f"model.args.pretrained: {shorten(text)}"):
        config = tf.AutoConfig.from_pretrained(path, **local)
        if hasattr(config, "use_cache"):
            config.use_cache = False
        return cls.from_pretrained(path, config=config, use_safetensors=True, **local)


def _as_linear(conv: nn.Module) -> nn.Linear:
    weight, bias = conv.weight, conv.bias
    linear = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None, device="meta")
    linear.weight = nn.Parameter(weight.detach().t().contiguous(), requires_grad=weight.requires_grad)
    if bias is not None:
        linear.bias = bias
    return linear.train(conv.training)


def linear_conv1d(model: nn.Module) -> int:
    """Replace every transformers `Conv1D` under `model` by an equal `nn.Linear`, in place (a
    Conv1D held twice becomes one Linear held twice); returns how many were replaced."""
    from transformers.pytorch_utils import Conv1D

    done: dict[int, nn.Linear] = {}
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):  # named_children would skip a repeat
            if isinstance(child, Conv1D):
                if id(child) not in done:
                    done[id(child)] = _as_linear(child)
                setattr(parent, name, done[id(child)])
    return len(done)


def build_hf_model(spec: str, args: dict[str, Any], num_classes: int, folders: list[Path]) -> nn.Module:
    """The model `spec` ("transformers:<class>") names, built as `args` says (see the module docstring)."""
    try:
        check_hf_args(args)
    except ValueError as exc:
        raise UserError(f"model.{exc}") from None
    tf = _transformers(spec)
    cls = _model_class(tf, spec)
    if "pretrained" in args:
        model = _pretrained(tf, cls, spec, args["pretrained"], folders)
    else:
        config = _config(tf, cls, spec, args["config"], num_classes)
        _check_size(cls, config, spec)
        with user_code(f"model.args: {shorten(spec)}"):
            model = _from_config(cls, config)
    linear_conv1d(model)
    return model
