"""Read a SparseML recipe: YAML, or the YAML front matter of a Markdown recipe card.

A SparseML recipe is a mapping whose keys ending in `modifiers` hold lists of
`!…Modifier`-tagged mappings; every other top-level key is a variable. Variables may be
numbers, `eval(...)` arithmetic over other variables, or anything else (a list of
parameter names) that a modifier pulls in whole with `eval(name)`. YAML anchors and
aliases are resolved by the YAML parser itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from paiexport import recipe_yaml
from paiexport.errors import UserError, shorten
from paiexport.sparseml.safe_eval import Number, UnknownName, safe_eval

_FRONT_MATTER = re.compile(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*$", re.S | re.M)
_FRAMEWORK_PREFIX = "pytorch."  # SparseML allowed `!pytorch.GMPruningModifier`


@dataclass(frozen=True)
class Tagged:
    """A `!Name` node: the tag (without `!`) and its mapping."""

    tag: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class RawModifier:
    """One modifier after variables are substituted; typed later in modifiers.py."""

    name: str
    fields: dict[str, Any]
    where: str  # e.g. "pruning_modifiers[1]", for error messages


@dataclass
class SparseMLRecipe:
    source: str
    variables: dict[str, Any] = field(default_factory=dict)
    modifiers: list[RawModifier] = field(default_factory=list)


class _Loader(recipe_yaml.BoundedLoader):
    """The recipe loader's bounded SafeLoader, keeping `!Tag` mappings as `Tagged`."""


def _construct_tagged(loader: _Loader, suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.MappingNode):
        return Tagged(suffix.removeprefix(_FRAMEWORK_PREFIX), loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.ScalarNode) and not loader.construct_scalar(node):
        return Tagged(suffix.removeprefix(_FRAMEWORK_PREFIX), {})
    raise yaml.constructor.ConstructorError(None, None, f"!{suffix} must tag a mapping", node.start_mark)


_Loader.add_multi_constructor("!", _construct_tagged)


def front_matter(text: str) -> str | None:
    """The YAML between the first pair of `---` lines of a Markdown file, if any."""
    match = _FRONT_MATTER.search(text)
    return match.group(1) if match else None


def _modifier_keys(raw: Any) -> list[str]:
    if not isinstance(raw, dict):
        return []
    return [
        k for k, v in raw.items() if isinstance(k, str) and k.endswith("modifiers") and isinstance(v, list)
    ]


def _is_staged(raw: dict[str, Any]) -> bool:
    return any(isinstance(v, dict) and _modifier_keys(v) for v in raw.values())


def _recipe_text(path: Path) -> str | None:
    text = path.read_text()
    return front_matter(text) if path.suffix.lower() == ".md" else text


def is_sparseml_recipe(path: Path) -> bool:
    """True for a SparseML recipe; a native recipe (no `*modifiers` lists, no tags) is never one."""
    try:
        text = _recipe_text(path)
        raw = recipe_yaml.safe_load(text, _Loader) if text is not None else None
    except recipe_yaml.RecipeYAMLError as exc:  # bomb, depth, cycle: refused whatever the format
        raise UserError(f"{path}: recipe refused: {exc}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and bool(_modifier_keys(raw) or _is_staged(raw))


def _parse(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        text = _recipe_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read recipe ({exc.__class__.__name__})") from None
    if text is None:
        raise UserError(f"{path}: no YAML front matter between '---' lines")
    raw = recipe_yaml.load_recipe_text(text, path, _Loader)
    if not isinstance(raw, dict) or not _modifier_keys(raw):
        if isinstance(raw, dict) and _is_staged(raw):
            raise UserError(f"{path}: staged SparseML recipes are not supported; flatten the stages")
        raise UserError(f"{path}: not a SparseML recipe (no list under a key ending in 'modifiers')")
    return raw


def _is_eval(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("eval(") and value.endswith(")")


def _split_variables(raw: dict[str, Any]) -> tuple[dict[str, Number], dict[str, Any], dict[str, str]]:
    numeric: dict[str, Number] = {}
    other: dict[str, Any] = {}
    pending: dict[str, str] = {}
    for name, value in raw.items():
        if name in _modifier_keys(raw):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            numeric[name] = value
        elif _is_eval(value):
            pending[name] = value[5:-1].strip()
        else:
            other[name] = value
    return numeric, other, pending


def evaluate_variables(raw: dict[str, Any], source: str) -> tuple[dict[str, Number], dict[str, Any]]:
    """Numeric and other top-level variables; `eval` ones resolved in dependency order."""
    numeric, other, pending = _split_variables(raw)
    while pending:
        progressed = False
        for name, expr in list(pending.items()):
            if expr in other:
                other[name] = other[expr]
            else:
                try:
                    numeric[name] = safe_eval(expr, numeric)
                except UnknownName:
                    continue  # may depend on a variable resolved later in this loop
                except UserError as exc:
                    raise UserError(f"{source}: {shorten(name)}: {exc}") from None
            del pending[name]
            progressed = True
        if not progressed:
            name, expr = next(iter(pending.items()))
            raise UserError(
                f"{source}: {shorten(name)}: eval({shorten(expr)}) names an undefined variable "
                "or forms a cycle"
            )
    return numeric, other


def _substitute(obj: Any, numeric: dict[str, Number], other: dict[str, Any], where: str) -> Any:
    if isinstance(obj, dict):
        return {k: _substitute(v, numeric, other, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, numeric, other, f"{where}[{i}]") for i, v in enumerate(obj)]
    if not _is_eval(obj):
        return obj
    expr = obj[5:-1].strip()
    if expr in other:
        return other[expr]
    try:
        return safe_eval(expr, numeric)
    except UserError as exc:
        raise UserError(f"{shorten(where, 100)}: {exc}") from None


def load_sparseml(path: Path) -> SparseMLRecipe:
    """Parse a SparseML recipe file into substituted, still untyped modifiers (recipe order)."""
    raw = _parse(path)
    numeric, other = evaluate_variables(raw, str(path))
    recipe = SparseMLRecipe(source=str(path), variables={**other, **numeric})
    for key in _modifier_keys(raw):
        for i, item in enumerate(raw[key]):
            where = f"{key}[{i}]"
            if not isinstance(item, Tagged):
                raise UserError(f"{path}: {where}: expected a !…Modifier entry")
            try:
                fields = _substitute(item.fields, numeric, other, f"{where} {item.tag}")
            except UserError as exc:
                raise UserError(f"{path}: {exc}") from None
            recipe.modifiers.append(RawModifier(item.tag, fields, where))
    return recipe
