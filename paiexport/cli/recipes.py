"""`paiexport recipes`: the bundled recipes, and `recipes convert` for SparseML recipes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from paiexport.cli import app, out, user_errors
from paiexport.errors import UserError
from paiexport.paths import temporary

recipes_app = typer.Typer(help="List the bundled recipes; convert SparseML recipes.")
app.add_typer(recipes_app, name="recipes")


@recipes_app.callback(invoke_without_command=True)
def list_recipes(ctx: typer.Context) -> None:
    """List the bundled recipes, one line each."""
    if ctx.invoked_subcommand:
        return
    from paiexport.recipe import bundled_recipes_dir, load_recipe

    with user_errors():
        for path in sorted(bundled_recipes_dir().glob("*.yaml")):
            try:
                r = load_recipe(path)
            except UserError as exc:  # one broken recipe must not hide the others
                out.print(f"{path.stem:<20} (invalid: {exc})", highlight=False, soft_wrap=True)
                continue
            amount = f"sparsity {r.effective_target():.0%} {r.sparsity.distribution.value:<8}"
            if r.sparsity.group_targets and r.effective_target() > 0:
                amount = ", ".join(f"{kind} {f:.0%}" for kind, f in r.sparsity.group_targets.items())
            out.print(
                f"{path.stem:<20} {r.method.name:<10} {amount} {r.model.name} on {r.data.name}, "
                f"{r.train.epochs} epochs",
                highlight=False,
            )


@recipes_app.command("convert")
def convert_recipe(
    source: Annotated[Path, typer.Argument(help="SparseML recipe (YAML, or Markdown front matter).")],
    output: Annotated[Path | None, typer.Option("-o", "--out", help="Native recipe to write.")] = None,
) -> None:
    """Write the native recipe equivalent to a SparseML recipe (stdout without -o)."""
    from paiexport.sparseml.load import is_sparseml_recipe
    from paiexport.sparseml.native import native_yaml

    with user_errors():
        if output is not None:
            check_output(source, output)
        if not source.is_file() or not is_sparseml_recipe(source):
            raise UserError(f"{source}: not a SparseML recipe (no *modifiers list of !...Modifier entries)")
        text = native_yaml(source)
        if output is not None:
            write_atomically(output, text)
    if output is None:
        out.print(text, markup=False, highlight=False, soft_wrap=True, end="")
    else:
        out.print(f"wrote {output}", highlight=False)


def check_output(source: Path, output: Path) -> None:
    """`-o` names a new or replaceable file in an existing folder, never the recipe converted."""
    if output.is_dir():
        raise UserError(f"-o {output}: is a folder; name the file to write")
    if not output.parent.is_dir():
        raise UserError(f"-o {output}: the folder {output.parent} does not exist")
    if output.resolve() == source.resolve() or (
        output.exists() and source.exists() and output.samefile(source)
    ):
        raise UserError(f"-o {output}: is the SparseML recipe being converted; write to another file")


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path` via a temporary sibling and a rename: never a half-written file."""
    tmp = temporary(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"-o {path}: cannot write it ({type(exc).__name__})") from None
    finally:
        tmp.unlink(missing_ok=True)
