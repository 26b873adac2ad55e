"""`paiexport recipes`: one line per bundled recipe; `recipes convert -o` writes a new file atomically."""

from __future__ import annotations

import os

import pytest
from rich.console import Console
from typer.testing import CliRunner

from paiexport import recipe
from paiexport.cli import app, recipes
from paiexport.cli.recipes import check_output, write_atomically
from paiexport.errors import UserError
from paiexport.recipe import bundled_recipes_dir


def test_every_bundled_recipe_is_listed_on_one_line(monkeypatch):
    monkeypatch.setattr(recipes, "out", Console(width=200))  # the runner's console is 80 columns
    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 0
    names = sorted(p.stem for p in bundled_recipes_dir().glob("*.yaml"))
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == names and not any("invalid" in line for line in lines)
    # recipes/snip90.yaml: snip, target 0.9, erk, cnn1d on mnist1d, 30 epochs
    assert f"{'snip90':<20} {'snip':<10} sparsity 90% {'erk':<8} cnn1d on mnist1d, 30 epochs" in lines
    # sparsity.group_targets: the share of each kind of channel group, not the pacing target
    bert = "transformers:BertForSequenceClassification on stdlib_text:modules, 8 epochs"
    assert f"{'bert_heads50':<20} {'snip':<10} heads 50%, ffn 75% {bert}" in lines


def test_a_broken_recipe_does_not_hide_the_others(monkeypatch, tmp_path):
    for name in ("snip90", "dense"):
        (tmp_path / f"{name}.yaml").write_text((bundled_recipes_dir() / f"{name}.yaml").read_text())
    (tmp_path / "broken.yaml").write_text("name: broken\nmethod: {name: snip}\nsparsity: {target: 2}\n")
    monkeypatch.setattr(recipe, "bundled_recipes_dir", lambda: tmp_path)
    monkeypatch.setattr(recipes, "out", Console(width=200))
    result = CliRunner().invoke(app, ["recipes"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["broken", "dense", "snip90"]
    assert lines[0].startswith(f"{'broken':<20} (invalid: ") and "sparsity.target" in lines[0]


def test_output_must_be_a_new_or_replaceable_file_beside_other_files(tmp_path):
    source = tmp_path / "r.yaml"
    source.write_text("modifiers: []\n")
    check_output(source, tmp_path / "native.yaml")
    cases = {
        tmp_path: "is a folder; name the file to write",
        tmp_path / "nowhere" / "n.yaml": f"the folder {tmp_path / 'nowhere'} does not exist",
        source: "is the SparseML recipe being converted; write to another file",
    }
    (tmp_path / "link.yaml").symlink_to(source)
    cases[tmp_path / "link.yaml"] = "is the SparseML recipe being converted"
    for output, message in cases.items():
        with pytest.raises(UserError) as caught:
            check_output(source, output)
        assert str(caught.value).startswith(f"-o {output}: {message}")


def test_written_atomically_and_nothing_left_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "n.yaml"
    path.write_text("old\n")
    write_atomically(path, "new\n")
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["n.yaml"]

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(UserError, match=r"^-o .*n\.yaml: cannot write it \(OSError\)$"):
        write_atomically(path, "newer\n")
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["n.yaml"]
