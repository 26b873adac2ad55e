"""Hostile recipes (#9 item 6): each is a one-line UserError / exit 2 naming the field, fast."""

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.cli.overrides import parse_overrides
from paiexport.errors import UserError
from paiexport.recipe import apply_overrides, load_recipe, validate_recipe

runner = CliRunner()

# "Billion laughs": 9 levels of 9 aliases each, 10^9 strings once expanded; ~1 kB of text.
LAUGHS = "{a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol], " + ", ".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)
)
BILLION_LAUGHS = LAUGHS + "}"
DEEP = "[" * 3000 + "]" * 3000


def refused(path_or_raw, overrides=()) -> str:
    """The UserError text of loading a recipe file (or validating a raw dict) with overrides."""
    with pytest.raises(UserError) as info:
        if isinstance(path_or_raw, dict):
            validate_recipe(apply_overrides(path_or_raw, parse_overrides(overrides)), "r.yaml")
        else:
            load_recipe(path_or_raw, parse_overrides(overrides))
    return str(info.value)


def run_cli(tmp_path, recipe, *overrides: str):
    sets = [arg for o in overrides for arg in ("--set", o)]
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out), *sets], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert not out.exists()  # refused before any stage wrote a folder
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"lol: {BILLION_LAUGHS}\n", "more than 100000 values once aliases are expanded"),
        ("loop: &l [*l]\n", "an alias refers to its own anchor (cyclic document)"),
        (f"deep: {DEEP}\n", "nested deeper than 64 levels"),
    ],
)
def test_yaml_bombs_in_the_file_are_refused(tmp_path, body, message):
    path = tmp_path / "r.yaml"
    path.write_text("name: t\nmethod: {name: snip}\n" + body)
    text = refused(path)
    assert text == f"{path}: recipe refused: {message}"


@pytest.mark.parametrize(
    ("value", "message"),
    [(BILLION_LAUGHS, "aliases are expanded"), ("&l [*l]", "own anchor"), (DEEP, "nested deeper")],
)
def test_yaml_bombs_in_set_values_are_refused(tmp_path, write_recipe, tiny_recipe_dict, value, message):
    line = run_cli(tmp_path, write_recipe(tiny_recipe_dict), f"data={value}")
    assert line.startswith("error: --set data: value refused:") and message in line


@pytest.mark.parametrize("seed", ["-5", str(2**32), "true"])
def test_seed_outside_numpys_range_or_a_bool_exits_2(tmp_path, write_recipe, tiny_recipe_dict, seed):
    line = run_cli(tmp_path, write_recipe(tiny_recipe_dict), f"seed={seed}")
    assert line.startswith("error: ") and ": seed: " in line
    assert (
        validate_recipe(apply_overrides(tiny_recipe_dict, parse_overrides(["seed=4294967295"])), "r").seed
        == 2**32 - 1
    )


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("train.epochs=yes", "train.epochs: expected a number, got true"),
        ("data.batch_size=true", "data.batch_size: expected a number, got true"),
        ("bench.batch_sizes=[1, false]", "bench.batch_sizes: expected a number, got [1, false]"),
    ],
)
def test_bools_are_not_numbers(tiny_recipe_dict, override, field):
    assert refused(tiny_recipe_dict, [override]) == f"r.yaml: {field}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('sparsity.structure="1:99999999999999999999"', "sparsity.structure: M of N:M is at most 1024"),
        (
            "bench.batch_sizes=[1000000000]",
            "bench.batch_sizes.0: Input should be less than or equal to 65536",
        ),
        ("data.batch_size=1000000", "data.batch_size: Input should be less than or equal to 65536"),
        (
            "model.args.hidden=[200000, 200000]",
            "model.args: args.hidden.0: Input should be less than or equal",
        ),
    ],
)
def test_absurd_sizes_are_bounded(tiny_recipe_dict, override, message):
    assert message in refused(tiny_recipe_dict, [override])


def test_too_many_channels_for_the_signal_length_exits_2_naming_model_args(
    tmp_path, write_recipe, tiny_recipe_dict
):
    # Seven stride-2 convs shrink the 40-long signal to one value: BatchNorm cannot train on it.
    recipe = write_recipe(tiny_recipe_dict)
    line = run_cli(tmp_path, recipe, "model={name: cnn1d, args: {channels: [4, 4, 4, 4, 4, 4, 4, 4]}}")
    assert line.startswith("error: model.args: Expected more than 1 value per channel when training")


def test_nm_groups_that_fit_no_layer_exit_2(tmp_path, write_recipe, tiny_recipe_dict):
    # The tiny MLP's layers take 40, 32 and 16 inputs: groups of 64 fit none of them.
    line = run_cli(tmp_path, write_recipe(tiny_recipe_dict), 'sparsity.structure="1:64"')
    assert (
        line
        == "error: sparsity.structure: 1:64 prunes nothing: no layer's input dimension is a multiple of 64"
    )


def test_huge_field_names_and_values_are_shortened(tiny_recipe_dict):
    text = refused(tiny_recipe_dict, ["x" * 1_000_000 + "=1"])
    assert text == f"r.yaml: {'x' * 59}…: unknown field"
    text = refused(tiny_recipe_dict, ["data.name=" + "y" * 1_000_000])
    assert len(text) < 300 and "\n" not in text and text.startswith("r.yaml: data.name: ")


def test_every_error_is_listed_one_per_line(tiny_recipe_dict):
    text = refused(tiny_recipe_dict, ["seed=-1", "data.val_fraction=3", "export.opset=3"])
    assert [line.split(":")[1].strip() for line in text.splitlines()] == [
        "seed",
        "data.val_fraction",
        "export.opset",
    ]
    six = [
        "seed=-1",
        "data.val_fraction=3",
        "export.opset=3",
        "bench.warmup=-1",
        "bench.iterations=0",
        "data.batch_size=0",
    ]
    assert refused(tiny_recipe_dict, six).splitlines()[-1] == "r.yaml: (and 1 more)"


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("sparsity.taget=0.5", "sparsity.taget: unknown field (did you mean 'target'?)"),
        ("method.batchs=2", "method.batchs: unknown field (did you mean 'batches'?)"),
        ("model.args.hiden=[8]", "args.hiden: Extra inputs are not permitted (did you mean 'hidden'?)"),
    ],
)
def test_unknown_fields_suggest_the_closest(tiny_recipe_dict, override, line):
    assert line in refused(tiny_recipe_dict, [override])


def test_a_yaml_date_is_a_field_error_not_a_crash(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: 2001-12-14\nmethod: {name: snip}\n")
    assert refused(path) == f"{path}: name: Input should be a valid string"
