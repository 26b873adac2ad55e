"""`--set dotted.key=value` strings -> typed `Override`s: the only place they are parsed."""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from paiexport import recipe_yaml
from paiexport.errors import UserError, shorten
from paiexport.recipe import Override


def parse_override(text: str) -> Override:
    """'train.epochs=1' -> Override(('train', 'epochs'), 1); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {shorten(repr(text))}: expected dotted.key=value")
    try:
        parsed = recipe_yaml.safe_load(value) if value.strip() else ""
    except recipe_yaml.RecipeYAMLError as exc:
        raise UserError(f"--set {shorten(key)}: value refused: {exc}") from None
    except yaml.YAMLError:
        raise UserError(f"--set {shorten(key)}: value {shorten(repr(value))} is not valid YAML") from None
    return Override(tuple(key.strip().split(".")), parsed)


def parse_overrides(texts: Iterable[str] | None) -> list[Override]:
    return [parse_override(t) for t in texts or []]
