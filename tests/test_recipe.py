from pathlib import Path

import pytest

from paiexport.cli.overrides import parse_overrides
from paiexport.errors import UserError
from paiexport.recipe import (
    apply_overrides,
    bundled_recipes_dir,
    load_recipe,
    resolve_recipe_path,
    validate_recipe,
)
from paiexport.sparsity.types import Distribution


def test_valid_recipe_is_typed(write_recipe, tiny_recipe_dict):
    recipe = load_recipe(write_recipe(tiny_recipe_dict))
    assert recipe.sparsity.distribution is Distribution.erk
    assert recipe.method.name == "snip" and recipe.method.batches == 1
    assert recipe.train.optimizer.nesterov is True
    assert recipe.bench.batch_sizes == [1, 8]


def test_minimal_recipe_gets_defaults(write_recipe):
    recipe = load_recipe(write_recipe({"name": "m", "method": {"name": "random"}}))
    assert recipe.data.name == "mnist1d" and recipe.model.name == "cnn1d"
    assert recipe.export.opset == 18 and recipe.export.sparse_threshold == 0.7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sparsity": {"target": 1.0}}, "sparsity.target"),
        ({"sparsity": {"target": -0.1}}, "sparsity.target"),
        ({"sparsity": {"distribution": "banana"}}, "sparsity.distribution"),
        ({"method": {"name": "nope"}}, "method.name: unknown method 'nope'"),
        ({"method": {"name": "snip", "batches": 0}}, "method.batches"),
        ({"method": {"name": "random", "batches": 2}}, "method.batches: unknown field"),
        ({"trian": {}}, "trian: unknown field"),
        ({"train": {"optimizer": {"name": "sgd", "lr": 0}}}, "train.optimizer.lr"),
        ({"model": {"name": "mlp", "args": {"depth": 3}}}, "model.args: args.depth"),
        ({"data": {"name": "imagenet"}}, "data.name"),
        ({"bench": {"batch_sizes": []}}, "bench.batch_sizes"),
        ({"export": {"int8_min_channels": -1}}, "export.int8_min_channels"),
        ({"export": {"space_to_depth": "sixteen"}}, "export.space_to_depth"),
        ({"name": "../escape"}, "name"),
        ({"model": {"name": "mlp", "args": {"hidden": [-4]}}}, "model.args: args.hidden.0"),
        ({"data": {"name": "synthetic", "val_fraction": 0.0}}, "data.val_fraction: 0 leaves no validation"),
        (
            {"sparsity": {"target": 0.5, "structure": "channel"}, "method": {"name": "rigl"}},
            "sparsity.structure: rigl keeps no channel",
        ),
        (
            {
                "sparsity": {"target": 0.5, "structure": "channel"},
                "method": {"name": "snip", "ablation": "random_ticket"},
            },
            "method.ablation: random_ticket",
        ),
        (
            {
                "sparsity": {"target": 0.5, "structure": "channel", "channel_reduce": "l2"},
                "method": {"name": "snip", "ablation": "invert"},
            },
            "method.ablation: invert is lost",
        ),
    ],
)
def test_bad_recipes_name_the_field_and_file(write_recipe, tiny_recipe_dict, change, message):
    tiny_recipe_dict.update(change)
    path = write_recipe(tiny_recipe_dict)
    with pytest.raises(UserError) as info:
        load_recipe(path)
    text = str(info.value)
    assert str(path) in text and message in text
    assert "\n" not in text


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="recipe file not found"):
        load_recipe(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="YAML mapping"):
        load_recipe(bad)


def test_overrides_are_typed_and_validated(write_recipe, tiny_recipe_dict):
    path = write_recipe(tiny_recipe_dict)
    recipe = load_recipe(
        path, parse_overrides(["train.epochs=1", "method.name=random", "bench.batch_sizes=[2, 4]"])
    )
    assert recipe.train.epochs == 1 and recipe.method.name == "random"
    assert recipe.bench.batch_sizes == [2, 4]
    with pytest.raises(UserError, match=r"train\.epochs"):
        load_recipe(path, parse_overrides(["train.epochs=many"]))
    with pytest.raises(UserError, match=r"expected dotted\.key=value"):
        load_recipe(path, parse_overrides(["train.epochs"]))
    with pytest.raises(UserError, match="seed is not a section"):
        load_recipe(path, parse_overrides(["seed.x=1"]))


def test_overrides_do_not_touch_the_input():
    raw = {"train": {"epochs": 3}}
    assert apply_overrides(raw, parse_overrides(["train.epochs=1"])) == {"train": {"epochs": 1}}
    assert raw == {"train": {"epochs": 3}}


def test_every_bundled_recipe_validates():
    paths = sorted(bundled_recipes_dir().glob("*.yaml"))
    assert {"dense", "random90", "magnitude90", "snip90"} <= {p.stem for p in paths}
    for path in paths:
        recipe = load_recipe(path)
        assert recipe.name == path.stem


def test_bundled_recipe_by_name():
    assert resolve_recipe_path("snip90") == bundled_recipes_dir() / "snip90.yaml"
    assert resolve_recipe_path("some/file.yaml") == Path("some/file.yaml")


def test_digest_ignores_formatting(write_recipe, tiny_recipe_dict):
    a = load_recipe(write_recipe(tiny_recipe_dict, "a.yaml"))
    reordered = dict(reversed(list(tiny_recipe_dict.items())))
    b = load_recipe(write_recipe(reordered, "b.yaml"))
    c = load_recipe(write_recipe(tiny_recipe_dict, "c.yaml"), parse_overrides(["seed=1"]))
    assert a.digest() == b.digest() != c.digest()


def test_runtime_fields_at_their_defaults_keep_the_hash():
    snip90 = bundled_recipes_dir() / "snip90.yaml"
    plain = load_recipe(snip90)
    defaults = ["bench.runtimes=[onnxruntime]", "export.deploy_runtime=onnxruntime"]
    explicit = load_recipe(snip90, parse_overrides(defaults))
    assert plain.digest() == explicit.digest() == "f939aa2420e8d9c3"  # the hash before these fields
    both = load_recipe(snip90, parse_overrides(["bench.runtimes=[onnxruntime,openvino]"]))
    assert both.bench.runtimes == ["onnxruntime", "openvino"] and both.digest() != plain.digest()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["bench.runtimes=[openvino]"], "bench.runtimes: must include onnxruntime"),
        (["bench.runtimes=[onnxruntime,tvm]"], "bench.runtimes: unknown runtime 'tvm' (choose from"),
        (["export.deploy_runtime=openvino"], "export.deploy_runtime: openvino is not in bench.runtimes"),
        (["export.deploy_runtime=tvm"], "export.deploy_runtime: Input should be 'onnxruntime' or 'openvino'"),
    ],
)
def test_runtime_fields_are_checked_naming_the_field(overrides, message):
    with pytest.raises(UserError) as caught:
        load_recipe(bundled_recipes_dir() / "snip90.yaml", parse_overrides(overrides))
    assert message in str(caught.value) and "snip90.yaml" in str(caught.value)


def test_the_default_task_leaves_the_hash_as_it_was(tiny_recipe_dict):
    # Fields added after recipes were first hashed (task, validate.max_metric_drop, the metric
    # gates) are left out of the digest while they hold their defaults: old runs keep their hash.
    plain = validate_recipe(tiny_recipe_dict, "r.yaml")
    spelled = validate_recipe(
        {
            **tiny_recipe_dict,
            "task": {"name": "classification", "label_smoothing": 0.0},
            "validate": {"max_metric_drop": None},
            "gates": {"min_metric": None, "max_metric_drop": None},
        },
        "r.yaml",
    )
    smoothed = validate_recipe({**tiny_recipe_dict, "task": {"label_smoothing": 0.1}}, "r.yaml")
    regression = validate_recipe({**tiny_recipe_dict, "task": {"name": "regression"}}, "r.yaml")
    assert plain.digest() == spelled.digest()
    assert len({plain.digest(), smoothed.digest(), regression.digest()}) == 3
    assert smoothed.task.name == "classification"  # a task section without a name configures the default


def test_sparsity_rules_leave_the_hash_as_it_was_until_used(tiny_recipe_dict):
    plain = validate_recipe(tiny_recipe_dict, "r.yaml")
    assert plain.digest() == "e4b7990532e4e4f2"  # the tiny recipe's hash before sparsity.rules existed
    empty = {**tiny_recipe_dict, "sparsity": {**tiny_recipe_dict["sparsity"], "rules": []}}
    used = {**tiny_recipe_dict, "sparsity": {**tiny_recipe_dict["sparsity"], "rules": ["myrules:register"]}}
    assert validate_recipe(empty, "r.yaml").digest() == plain.digest()
    assert validate_recipe(used, "r.yaml").digest() != plain.digest()
    bad = {**tiny_recipe_dict, "sparsity": {**tiny_recipe_dict["sparsity"], "rules": ["my rules"]}}
    with pytest.raises(
        UserError, match=r"sparsity\.rules: expected \"module:callable\" \(e\.g\. myrules:register\)"
    ):
        validate_recipe(bad, "r.yaml")


def test_an_unknown_task_is_named_with_the_choices(tiny_recipe_dict):
    with pytest.raises(UserError) as caught:
        validate_recipe({**tiny_recipe_dict, "task": {"name": "detection"}}, "r.yaml")
    assert str(caught.value).startswith(
        "r.yaml: task.name: unknown task 'detection' (choose from classification,"
    )
    with pytest.raises(UserError, match=r"r\.yaml: task\.loss: "):
        validate_recipe({**tiny_recipe_dict, "task": {"name": "regression", "loss": "hinge"}}, "r.yaml")


def test_export_dynamic_axes_left_empty_keeps_the_digest(write_recipe, tiny_recipe_dict):
    plain = load_recipe(write_recipe(tiny_recipe_dict))
    tiny_recipe_dict["export"] = {**tiny_recipe_dict.get("export", {}), "dynamic_axes": {}}
    empty = load_recipe(write_recipe(tiny_recipe_dict))
    tiny_recipe_dict["export"]["dynamic_axes"] = {"input_ids": [0, 1]}
    axes = load_recipe(write_recipe(tiny_recipe_dict))
    assert axes.export.dynamic_axes == {"input_ids": [0, 1]}
    assert plain.digest() == empty.digest() != axes.digest()
    tiny_recipe_dict["export"]["dynamic_axes"] = {"input_ids": [-1]}
    with pytest.raises(UserError, match=r"export\.dynamic_axes"):
        load_recipe(write_recipe(tiny_recipe_dict))


def test_group_targets_and_seq_lens_leave_the_hash_as_it_was_until_used(tiny_recipe_dict):
    plain = validate_recipe(tiny_recipe_dict, "r.yaml")
    assert plain.digest() == "e4b7990532e4e4f2"  # the tiny recipe's hash before these fields existed
    sparsity = {**tiny_recipe_dict["sparsity"], "structure": "channel"}
    channel = validate_recipe({**tiny_recipe_dict, "sparsity": sparsity}, "r.yaml")
    bench = tiny_recipe_dict.get("bench", {})
    spelled = {
        **tiny_recipe_dict,
        "sparsity": {**sparsity, "group_targets": {}},
        "bench": {**bench, "seq_lens": []},
    }
    assert validate_recipe(spelled, "r.yaml").digest() == channel.digest()
    used = {**tiny_recipe_dict, "sparsity": {**sparsity, "group_targets": {"heads": 0.5}}}
    assert validate_recipe(used, "r.yaml").digest() != channel.digest()
    lengths = validate_recipe({**tiny_recipe_dict, "bench": {**bench, "seq_lens": [32, 128, 32]}}, "r.yaml")
    assert lengths.bench.seq_lens == [32, 128] and lengths.digest() != plain.digest()


@pytest.mark.parametrize(
    ("sparsity", "bench", "message"),
    [
        (
            {"structure": "channel", "group_targets": {"head": 0.5}},
            {},
            "r.yaml: sparsity.group_targets: unknown kind 'head' (did you mean 'heads'?); "
            "choose from heads, ffn, channels",
        ),
        ({"structure": "channel", "group_targets": {"ffn": 1.0}}, {}, "r.yaml: sparsity.group_targets.ffn: "),
        (
            {"group_targets": {"heads": 0.5}},
            {},
            "r.yaml: sparsity.group_targets: needs sparsity.structure: channel",
        ),
        ({}, {"seq_lens": [0]}, "r.yaml: bench.seq_lens.0: "),
    ],
)
def test_group_targets_and_seq_lens_are_checked_naming_the_field(tiny_recipe_dict, sparsity, bench, message):
    raw = {**tiny_recipe_dict, "sparsity": {**tiny_recipe_dict["sparsity"], **sparsity}, "bench": bench}
    with pytest.raises(UserError) as caught:
        validate_recipe(raw, "r.yaml")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
