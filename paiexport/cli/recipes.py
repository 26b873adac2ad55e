"""`paiexport recipes`: the bundled recipes, and `recipes convert` for SparseML recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paiexport.cli import app, out, user_errors
from paiexport.errors import UserError

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
            out.print(
                f"{path.stem:<20} {r.method.name:<10} sparsity {r.effective_target():.0%} "
                f"{r.sparsity.distribution.value:<8} {r.model.name} on {r.data.name}, "
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
        if not source.is_file() or not is_sparseml_recipe(source):
            raise UserError(f"{source}: not a SparseML recipe (no *modifiers list of !...Modifier entries)")
        text = native_yaml(source)
    if output is None:
        out.print(text, markup=False, highlight=False, soft_wrap=True, end="")
    else:
        output.write_text(text)
        out.print(f"wrote {output}", highlight=False)
