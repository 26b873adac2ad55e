"""Typed SparseML modifiers: field names and defaults as in SparseML's PyTorch classes.

Unknown fields and unsupported modifiers are errors naming the modifier and the file:
a recipe that silently lost a modifier would train something else than its author meant.
`-1` epochs keep SparseML's meaning: start immediately / never end.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from paiexport.config import StrictModel
from paiexport.errors import UserError
from paiexport.sparseml.load import RawModifier, SparseMLRecipe

_LR_KWARGS = {
    "StepLR": ({"step_size"}, {"step_size", "gamma"}),
    "MultiStepLR": ({"milestones"}, {"milestones", "gamma"}),
    "ExponentialLR": ({"gamma"}, {"gamma"}),
}


class SparseMLModifier(StrictModel):
    start_epoch: float = -1.0
    end_epoch: float = -1.0
    log_types: str | list[str] | None = None  # where SparseML logged; nothing to train on


class EpochRangeModifier(SparseMLModifier):
    start_epoch: float = Field(ge=0.0)
    end_epoch: float = Field(gt=0.0)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class GMPruningModifier(SparseMLModifier):
    params: list[str] = Field(default_factory=list)
    init_sparsity: float = Field(ge=0.0, le=1.0)
    final_sparsity: float | dict[float, list[str]]
    start_epoch: float = Field(ge=0.0)
    end_epoch: float = Field(ge=0.0)
    update_frequency: float = Field(gt=0.0)
    inter_func: Literal["cubic", "linear"] = "cubic"
    mask_type: Literal["unstructured"] = "unstructured"
    leave_enabled: bool = True

    _params_list = field_validator("params", mode="before")(_as_list)

    @field_validator("final_sparsity")
    @classmethod
    def _sparsities_in_range(cls, value: float | dict[float, list[str]]) -> float | dict[float, list[str]]:
        for s in value if isinstance(value, dict) else [value]:
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"{s} is not a sparsity in [0, 1]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GMPruningModifier:
        if self.end_epoch <= self.start_epoch:
            raise ValueError(f"end_epoch {self.end_epoch} must be after start_epoch {self.start_epoch}")
        if isinstance(self.final_sparsity, dict) and self.params:
            raise ValueError("params must be [] when final_sparsity maps sparsities to params")
        if not isinstance(self.final_sparsity, dict) and not self.params:
            raise ValueError("params: required (names, re: patterns or __ALL_PRUNABLE__)")
        return self

    def groups(self) -> list[tuple[float, list[str]]]:
        """(final_sparsity, patterns) pairs: one, or one per key of a final_sparsity mapping."""
        if isinstance(self.final_sparsity, dict):
            return [(s, _as_list(p)) for s, p in self.final_sparsity.items()]
        return [(self.final_sparsity, self.params)]


# The schedule fields a pruning modifier hands to a native `method.groups` entry as they are.
GROUP_SCHEDULE_FIELDS = frozenset(
    {"init_sparsity", "start_epoch", "end_epoch", "update_frequency", "inter_func", "leave_enabled"}
)


class MagnitudePruningModifier(GMPruningModifier):
    """Layer-wise magnitude pruning: SparseML's alias of GMPruningModifier."""


class GlobalMagnitudePruningModifier(GMPruningModifier):
    """One sparsity target over all its params, allocated by global magnitude."""


class ConstantPruningModifier(SparseMLModifier):
    params: list[str] = Field(min_length=1)

    _params_list = field_validator("params", mode="before")(_as_list)


def _never_ends(value: float) -> float:
    return -1.0  # SparseML's Set*Modifier constructors overwrite any end_epoch with -1


class SetLearningRateModifier(SparseMLModifier):
    """Sets the LR once, at start_epoch; end_epoch is accepted and ignored, as in SparseML."""

    learning_rate: float = Field(gt=0.0)
    constant_logging: bool = False

    _no_end = field_validator("end_epoch")(_never_ends)


class LearningRateModifier(SparseMLModifier):
    lr_class: Literal["StepLR", "MultiStepLR", "ExponentialLR"]
    lr_kwargs: dict[str, Any]
    init_lr: float = Field(ge=0.0)
    start_epoch: float
    update_frequency: Literal[-1] = -1
    constant_logging: bool = False

    @model_validator(mode="after")
    def _kwargs_fit_class(self) -> LearningRateModifier:
        required, allowed = _LR_KWARGS[self.lr_class]
        if extra := set(self.lr_kwargs) - allowed:
            raise ValueError(f"lr_kwargs: {sorted(extra)} not supported for {self.lr_class}")
        if missing := required - set(self.lr_kwargs):
            raise ValueError(f"lr_kwargs: {sorted(missing)} required for {self.lr_class}")
        for mile in self.lr_kwargs.get("milestones", []):
            if mile <= self.start_epoch or (0.0 <= self.end_epoch <= mile):
                raise ValueError(f"lr_kwargs.milestones: {mile} must lie between start_epoch and end_epoch")
        return self

    def gamma(self) -> float:
        return float(self.lr_kwargs.get("gamma", 0.1))  # torch's default for StepLR/MultiStepLR


class LearningRateFunctionModifier(SparseMLModifier):
    lr_func: Literal["linear", "cosine"]
    init_lr: float = Field(ge=0.0, le=1.0)
    final_lr: float = Field(ge=0.0, le=1.0)
    start_epoch: float
    end_epoch: float
    update_frequency: Literal[-1] = -1

    @model_validator(mode="after")
    def _ends_after_start(self) -> LearningRateFunctionModifier:
        if self.end_epoch <= max(self.start_epoch, 0.0):
            raise ValueError(f"end_epoch {self.end_epoch} must be after start_epoch {self.start_epoch}")
        return self


class SetWeightDecayModifier(SparseMLModifier):
    """Sets the optimizer's weight decay once, at start_epoch."""

    weight_decay: float = Field(ge=0.0)
    constant_logging: bool = False

    _no_end = field_validator("end_epoch")(_never_ends)


class QuantizationModifier(SparseMLModifier):
    """Recorded only: paiexport quantizes the trained model to int8 at export (not QAT)."""

    submodules: list[str] | None = None
    model_fuse_fn_name: str | None = None
    disable_quantization_observer_epoch: float | None = None
    freeze_bn_stats_epoch: float | None = None
    reduce_range: bool = False
    quantize_embeddings: bool = True
    quantize_linear_activations: bool = True
    num_calibration_steps: int | None = None


MODIFIERS: dict[str, type[SparseMLModifier]] = {
    cls.__name__: cls
    for cls in (
        EpochRangeModifier,
        GMPruningModifier,
        MagnitudePruningModifier,
        GlobalMagnitudePruningModifier,
        ConstantPruningModifier,
        SetLearningRateModifier,
        LearningRateModifier,
        LearningRateFunctionModifier,
        SetWeightDecayModifier,
        QuantizationModifier,
    )
}
PRUNING = (GMPruningModifier, ConstantPruningModifier)
LR = (SetLearningRateModifier, LearningRateModifier, LearningRateFunctionModifier)


def _error_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = str(err["loc"][0]) if err["loc"] else ""
    msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
    return f".{loc}: {msg}" if loc else f": {msg}"


def parse_modifier(raw: RawModifier, source: str) -> SparseMLModifier:
    """One typed modifier; an unsupported class or bad field is a one-line UserError."""
    cls = MODIFIERS.get(raw.name)
    if cls is None:
        raise UserError(
            f"{source}: {raw.where}: unsupported SparseML modifier {raw.name} "
            f"(supported: {', '.join(MODIFIERS)})"
        )
    try:
        return cls.model_validate(raw.fields)
    except ValidationError as exc:
        raise UserError(f"{source}: {raw.where} {raw.name}{_error_line(exc)}") from None


def parse_modifiers(recipe: SparseMLRecipe) -> list[SparseMLModifier]:
    return [parse_modifier(raw, recipe.source) for raw in recipe.modifiers]
