"""The recipe: one YAML file, validated once into typed sections.

Every error names the field path and the file, on one line.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_validator

from paiexport import __version__, recipe_yaml
from paiexport.bench.settings import BenchSettings
from paiexport.config import BOOL_FOR_NUMBER, StrictModel
from paiexport.data.config import DataConfig
from paiexport.errors import UserError, did_you_mean, shorten
from paiexport.export.config import ExportConfig
from paiexport.export.metadata import tagged
from paiexport.methods import METHODS
from paiexport.methods.compact_training import check_compact_training
from paiexport.methods.score import Ablation
from paiexport.models.config import ModelConfig
from paiexport.recipe_digest import recipe_digest
from paiexport.reporting.gates import GatesConfig
from paiexport.sparseml.load import is_sparseml_recipe
from paiexport.sparseml.native import sparseml_to_native
from paiexport.sparsity.types import ChannelReduce, NMPattern, SparsityConfig, StructureKind
from paiexport.tasks import TASKS, Task, TaskSection, make_task
from paiexport.tasks.classification import ClassificationConfig
from paiexport.training.config import CheckpointChoice, TrainConfig
from paiexport.verify.config import ValidateConfig

MAX_NM_GROUP = 1024  # N:M groups wider than any layer's input keep every weight

MethodSection = Annotated[
    Union[tuple(cls.config_class for cls in METHODS.values())],  # noqa: UP007 - built at runtime
    Field(discriminator="name"),
]


# `validate` shadows the deprecated BaseModel.validate classmethod; the recipe key is public.
warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)


class Recipe(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="numpy's seed range")
    task: TaskSection = Field(default_factory=ClassificationConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    sparsity: SparsityConfig = Field(default_factory=SparsityConfig)
    method: MethodSection
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    bench: BenchSettings = Field(default_factory=BenchSettings)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    validate: ValidateConfig = Field(default_factory=ValidateConfig)
    _folder: Path | None = PrivateAttr(default=None)  # the recipe file's; factories and data.path look there

    def search_folders(self) -> list[Path]:
        return [self._folder] if self._folder is not None else []

    @model_validator(mode="before")
    @classmethod
    def _classification_by_default(cls, data: Any) -> Any:
        """`task: {label_smoothing: 0.1}` (no name) configures the default task."""
        task = data.get("task") if isinstance(data, dict) else None
        if isinstance(task, dict) and "name" not in task:
            data = {**data, "task": {"name": "classification", **task}}
        return data

    @model_validator(mode="after")
    def _best_needs_validation_data(self) -> Recipe:
        if self.train.checkpoint is CheckpointChoice.best and self.data.val_fraction == 0:
            raise ValueError(
                "data.val_fraction: 0 leaves no validation split to pick the best checkpoint; "
                "use train.checkpoint: last"
            )
        return self

    @model_validator(mode="after")
    def _deploy_runtime_is_benchmarked(self) -> Recipe:
        if (runtime := self.export.deploy_runtime) not in self.bench.runtimes:
            raise ValueError(f"export.deploy_runtime: {runtime} is not in bench.runtimes")
        return self

    @model_validator(mode="after")
    def _method_fits_structure(self) -> Recipe:
        structure = self.sparsity.structure
        if self.train.compact:  # static channel masks only
            check_compact_training(structure, self.method.name)
        if self.sparsity.group_targets and structure is not StructureKind.channel:
            raise ValueError("sparsity.group_targets: needs sparsity.structure: channel")
        if structure is StructureKind.unstructured:
            return self
        if isinstance(structure, NMPattern) and structure.m > MAX_NM_GROUP:
            raise ValueError(
                f"sparsity.structure: M of N:M is at most {MAX_NM_GROUP}, got {shorten(structure.m)}"
            )
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

    def effective_target(self) -> float:
        """A method that does not prune (dense) ignores `sparsity.target`."""
        return self.sparsity.target if METHODS[self.method.name].prunes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def make_task(self) -> Task:
        """The recipe's task, its user callables (a custom task's) looked up from the recipe's folder."""
        task = make_task(self.task)
        bind = getattr(task, "bind", None)
        if callable(bind):
            bind(self.search_folders())
        return task

    def max_metric_drop(self, task: Task) -> float:
        """How much of the primary metric an int8 file may lose (validate.max_metric_drop)."""
        if self.validate.max_metric_drop is not None:
            return self.validate.max_metric_drop
        return self.validate.max_accuracy_drop if task.name == "classification" else task.default_max_drop

    def metadata(self, reached_sparsity: float, task_keys: dict[str, object]) -> dict[str, str]:
        """`metadata_props` shared by every file of a run of this recipe."""
        return tagged(
            {
                "recipe": self.name,
                "recipe_hash": self.digest(),
                "dataset": self.data.name,  # validate refuses another --data
                "seed": self.seed,  # digits' and synthetic's test splits depend on it (validate)
                "method": self.method.name,
                "structure": self.to_dict()["sparsity"]["structure"],
                "target_sparsity": self.effective_target(),
                "reached_sparsity": round(reached_sparsity, 6),
                **task_keys,  # classification: torch_accuracy, as it always was
                "version": __version__,
            }
        )

    def digest(self) -> str:
        """Short hash of the validated recipe (stable across key order and formatting)."""
        return recipe_digest(self.to_dict())


MAX_ERRORS = 5  # lines of validation errors shown; the rest are counted


def _unions() -> dict[str, dict[str, Any]]:
    """The recipe's tagged sections: section -> {tag: config class}."""
    return {
        "method": {k: v.config_class for k, v in METHODS.items()},
        "task": {k: v.config_class for k, v in TASKS.items()},
    }


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts = [shorten(p) for p in loc]
    # Discriminated unions put the tag in the path ("method.snip.batches"): drop it.
    if len(parts) > 1 and parts[1] in _unions().get(parts[0], {}):
        parts.pop(1)
    return ".".join(parts) or "<root>"


def _section_fields(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section holding `loc`'s last part (for 'did you mean')."""
    section: Any = Recipe
    unions = _unions()
    for part in loc[:-1]:
        if section is Recipe and part in unions:
            continue  # the next part is the section's tag
        if section is Recipe and len(loc) > 2 and part in unions.get(loc[0], {}):
            section = unions[loc[0]][part]
            continue
        field = section.model_fields.get(part) if isinstance(part, str) else None
        inner = field.annotation if field else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        section = inner
    return list(section.model_fields)


def _format_error(err: dict[str, Any]) -> str:
    loc = _format_loc(err["loc"])
    tags = _unions().get(str(err["loc"][0]) if err["loc"] else "", METHODS)
    if err["type"] == "union_tag_invalid":
        name = shorten(err["input"].get("name"))
        return f"{loc}.name: unknown {loc} {name!r} (choose from {', '.join(tags)})"
    if err["type"] == "union_tag_not_found":
        return f"{loc}.name: missing (choose from {', '.join(tags)})"
    if err["type"] == BOOL_FOR_NUMBER:  # raised by a section, about one of its fields
        field = ".".join([*([loc] if err["loc"] else []), shorten(err["ctx"]["field"])])
        return f"{field}: expected a number, got {err['ctx']['value']}"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown field{did_you_mean(str(err['loc'][-1]), _section_fields(err['loc']))}"
    msg = shorten(err["msg"].removeprefix("Value error, "), 200)
    return f"{loc}: {msg}" if err["loc"] else msg  # recipe-level checks name their fields


def validate_recipe(raw: dict[str, Any], source: str) -> Recipe:
    """Typed recipe; every error (up to MAX_ERRORS) on its own line naming the field and file."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [f"{source}: {_format_error(e)}" for e in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            lines.append(f"{source}: (and {len(errors) - MAX_ERRORS} more)")
        raise UserError("\n".join(lines)) from None


@dataclass(frozen=True)
class Override:
    """One recipe field set to a typed value: (("train", "epochs"), 1). The CLI parses
    `--set train.epochs=1` into this; library code never parses override strings."""

    path: tuple[str, ...]
    value: Any

    @property
    def key(self) -> str:
        return ".".join(self.path)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """Set fields in a copy of the raw recipe; validation happens afterwards, once."""
    result = copy.deepcopy(raw)  # not a JSON round trip: YAML dates or bytes are not JSON
    for override in overrides:
        path, node = override.path, result
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = shorten(".".join(path[: i + 1]))
                raise UserError(f"--set {shorten(override.key)}: {where} is not a section")
            node = child
        node[path[-1]] = copy.deepcopy(override.value)
    return result


def read_recipe_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        raw = recipe_yaml.load_recipe_text(path.read_text(), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read recipe ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping of sections")
    return raw


def load_recipe(path: Path, overrides: Sequence[Override] = ()) -> Recipe:
    """Read (native, or SparseML converted to native), override and validate a recipe file."""
    sparseml = path.is_file() and is_sparseml_recipe(path)
    raw = apply_overrides(sparseml_to_native(path) if sparseml else read_recipe_file(path), overrides)
    recipe = validate_recipe(raw, str(path))
    recipe._folder = path.resolve().parent
    return recipe


def bundled_recipes_dir() -> Path:
    """recipes/ in a source checkout, else the copy installed inside the package."""
    source = Path(__file__).resolve().parent.parent / "recipes"
    return source if source.is_dir() else Path(__file__).resolve().parent / "_recipes"


def resolve_recipe_path(text: str) -> Path:
    """A path, or the name of a bundled recipe ("snip90")."""
    path = Path(text)
    if path.exists() or path.suffix in {".yaml", ".yml", ".md"} or "/" in text:
        return path
    bundled = bundled_recipes_dir() / f"{text}.yaml"
    return bundled if bundled.is_file() else path
