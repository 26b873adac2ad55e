"""The recipe: one YAML file, validated once into typed sections.

Every error names the field path and the file, on one line.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import Field, PositiveInt, ValidationError, field_validator, model_validator

from paiexport import __version__
from paiexport.config import StrictModel
from paiexport.data import DatasetName
from paiexport.errors import UserError
from paiexport.export.metadata import tagged
from paiexport.export.variants import ExportFormat, Int8Mode
from paiexport.methods import METHODS
from paiexport.methods.score import Ablation, ScoreMethod
from paiexport.models import ModelName, parse_model_args
from paiexport.reporting.gates import GatesConfig
from paiexport.sparsity.types import ChannelReduce, SparsityConfig, StructureKind
from paiexport.training.loop import CheckpointChoice, TrainConfig

MethodSection = Annotated[
    Union[tuple(cls.config_class for cls in METHODS.values())],  # noqa: UP007 - built at runtime
    Field(discriminator="name"),
]


class DataConfig(StrictModel):
    name: DatasetName = DatasetName.mnist1d
    batch_size: PositiveInt = 128
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)


class ModelConfig(StrictModel):
    name: ModelName = ModelName.cnn1d
    args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("args")
    @classmethod
    def _args_fit_model(cls, args: dict[str, Any], info: Any) -> dict[str, Any]:
        name = info.data.get("name")
        if name is not None:
            parse_model_args(name, args)
        return args


class ExportConfig(StrictModel):
    opset: int = Field(default=18, ge=17, le=21)
    sparse_threshold: float = Field(
        default=0.7, ge=0.0, le=1.0,
        description="initializers at least this sparse are stored as sparse initializers",
    )  # fmt: skip
    formats: list[ExportFormat] = Field(default_factory=lambda: list(ExportFormat), min_length=1)
    int8: Int8Mode = Int8Mode.dynamic
    calibration_samples: int = Field(default=300, ge=1, description="training samples for static int8")

    @field_validator("formats")
    @classmethod
    def _dense_is_the_baseline(cls, formats: list[ExportFormat]) -> list[ExportFormat]:
        if ExportFormat.dense not in formats:
            raise ValueError("must include dense: every other file is measured against it")
        return formats


class ValidateConfig(StrictModel):
    max_accuracy_drop: float = Field(
        default=1.0, ge=0.0, le=100.0, description="points of test accuracy a variant may lose vs PyTorch"
    )


class BenchConfig(StrictModel):
    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1, 64], min_length=1)
    threads: list[PositiveInt] = Field(default_factory=lambda: [1], min_length=1)
    warmup: int = Field(default=10, ge=0)
    iterations: int = Field(default=100, ge=1)


# `validate` shadows the deprecated BaseModel.validate classmethod; the recipe key is public.
warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)


class Recipe(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    sparsity: SparsityConfig = Field(default_factory=SparsityConfig)
    method: MethodSection
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    bench: BenchConfig = Field(default_factory=BenchConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    validate: ValidateConfig = Field(default_factory=ValidateConfig)

    @model_validator(mode="after")
    def _best_needs_validation_data(self) -> Recipe:
        if self.train.checkpoint is CheckpointChoice.best and self.data.val_fraction == 0:
            raise ValueError(
                "data.val_fraction: 0 leaves no validation split to pick the best checkpoint; "
                "use train.checkpoint: last"
            )
        return self

    @model_validator(mode="after")
    def _method_fits_structure(self) -> Recipe:
        structure = self.sparsity.structure
        if structure is StructureKind.unstructured:
            return self
        if not METHODS[self.method.name].supports_structure:
            raise ValueError(
                f"sparsity.structure: {self.method.name} keeps no channel or N:M structure; use unstructured"
            )
        ablation = getattr(self.method, "ablation", Ablation.none)
        if ablation is Ablation.random_ticket:
            raise ValueError("method.ablation: random_ticket shuffles single weights; use it unstructured")
        if ablation is Ablation.invert and self.sparsity.channel_reduce is ChannelReduce.l2:
            raise ValueError(
                "method.ablation: invert is lost in an l2 channel_reduce (|-s| = |s|); use sum or mean"
            )
        return self

    @model_validator(mode="after")
    def _compact_training_needs_static_channels(self) -> Recipe:
        if not self.train.compact:
            return self
        if self.sparsity.structure is not StructureKind.channel:
            raise ValueError("train.compact: needs sparsity.structure: channel (whole channels to remove)")
        method = METHODS[self.method.name]
        if not issubclass(method, ScoreMethod) or method.fit is not ScoreMethod.fit:
            raise ValueError(
                f"train.compact: needs static masks chosen once at initialization; {self.method.name} "
                "changes its masks during or after training"
            )
        return self

    def effective_target(self) -> float:
        """The dense method ignores `sparsity.target`."""
        return 0.0 if self.method.name == "dense" else self.sparsity.target

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def metadata(self, reached_sparsity: float, torch_accuracy: float) -> dict[str, str]:
        """`metadata_props` shared by every file of a run of this recipe."""
        return tagged(
            {
                "recipe": self.name,
                "recipe_hash": self.digest(),
                "seed": self.seed,  # digits' and synthetic's test splits depend on it (validate)
                "method": self.method.name,
                "structure": self.to_dict()["sparsity"]["structure"],
                "target_sparsity": self.effective_target(),
                "reached_sparsity": round(reached_sparsity, 6),
                "torch_accuracy": torch_accuracy,
                "version": __version__,
            }
        )

    def digest(self) -> str:
        """Short hash of the validated recipe (stable across key order and formatting)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # Discriminated unions put the tag in the path ("method.snip.batches"): drop it.
    if len(parts) > 1 and parts[0] == "method" and parts[1] in METHODS:
        parts.pop(1)
    return ".".join(parts) or "<root>"


def _format_error(err: dict[str, Any]) -> str:
    loc = _format_loc(err["loc"])
    if err["type"] == "union_tag_invalid":
        return f"{loc}.name: unknown method {err['input'].get('name')!r} (choose from {', '.join(METHODS)})"
    if err["type"] == "union_tag_not_found":
        return f"{loc}.name: missing (choose from {', '.join(METHODS)})"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown field"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if err["loc"] else msg  # recipe-level checks name their fields


def validate_recipe(raw: dict[str, Any], source: str) -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(f"{source}: {_format_error(errors[0])}{more}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=1' -> (['train', 'epochs'], 1); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected dotted.key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"--set {key}: value {value!r} is not valid YAML") from None
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a copy of the raw recipe; validation happens afterwards, once."""
    result = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {'.'.join(path)}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return result


def read_recipe_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read recipe ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping of sections")
    return raw


def load_recipe(path: Path, overrides: list[str] = ()) -> Recipe:
    """Read, override and validate a recipe file."""
    raw = apply_overrides(read_recipe_file(path), list(overrides))
    return validate_recipe(raw, str(path))


def bundled_recipes_dir() -> Path:
    """recipes/ in a source checkout, else the copy installed inside the package."""
    source = Path(__file__).resolve().parent.parent / "recipes"
    return source if source.is_dir() else Path(__file__).resolve().parent / "_recipes"


def resolve_recipe_path(text: str) -> Path:
    """A path, or the name of a bundled recipe ("snip90")."""
    path = Path(text)
    if path.exists() or path.suffix in {".yaml", ".yml"} or "/" in text:
        return path
    bundled = bundled_recipes_dir() / f"{text}.yaml"
    return bundled if bundled.is_file() else path
