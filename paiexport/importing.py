"""Import a user's "package.module:callable" (model and dataset factories) from the recipe's world.

Search order: the recipe's folder and the current folder first, then `sys.path`, so a model file
beside the recipe works without installing anything.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from paiexport.errors import UserError, first_line, shorten


@contextmanager
def _search_first(folders: list[Path]) -> Iterator[None]:
    added = [str(f.resolve()) for f in folders]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            sys.path.remove(entry)


def import_callable(spec: str, folders: list[Path], field: str) -> Callable[..., Any]:
    """The callable `spec` names; every failure is one line naming `field`."""
    module_name, _, attr = spec.partition(":")
    with _search_first([*folders, Path.cwd()]):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            raise UserError(
                f"{field}: module {shorten(missing)!r} not found (searched the recipe's folder, "
                "the current folder, sys.path)"
            ) from None
        except KeyboardInterrupt:  # Ctrl-C (or paiexport's stop signal) stays what it is
            raise
        except BaseException as exc:  # the module fails while importing, or calls sys.exit()
            raise UserError(f"{field}: importing {shorten(module_name)} raised {first_line(exc)}") from None
    if not hasattr(module, attr):
        raise UserError(f"{field}: module {shorten(module_name)!r} has no attribute {shorten(attr)!r}")
    found = getattr(module, attr)
    if not callable(found):
        raise UserError(f"{field}: {shorten(spec)} is a {type(found).__name__}, not callable")
    return found


@contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run the user's code: any error it raises, `sys.exit()` included, becomes one UserError line.

    The line is `{what} raised Kind: first line of the message`; Ctrl-C stays a KeyboardInterrupt.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise UserError(f"{what} raised {first_line(exc)}") from None


_REGISTERED: dict[str, Callable[[], Any]] = {}


def register(factory: Callable[[], Any]) -> str:
    """A "paiexport.importing:NAME" spec for an in-process object (the Python API's models and datasets).

    Such a spec only resolves in the process that registered it; a run folder's recipe.yaml
    names it, but cannot rebuild the object later.
    """
    name = f"registered_{len(_REGISTERED)}"
    _REGISTERED[name] = factory
    globals()[name] = factory  # what import_callable finds
    return f"{__name__}:{name}"
