"""Property-based: any YAML document or `--set` override gives a valid recipe or a one-line UserError."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import TINY_RECIPE

from paiexport.cli.overrides import parse_overrides
from paiexport.errors import UserError
from paiexport.recipe import Recipe, load_recipe

SETTINGS = settings(
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SECTIONS = ["name", "seed", "data", "model", "sparsity", "method", "train", "export", "bench", "validate"]
FIELDS = ["target", "epochs", "lr", "batch_size", "args", "hidden", "formats", "exclude"]
KEYS = SECTIONS + FIELDS  # recipe keys, so random documents hit real fields too
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(KEYS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def leaf_paths(raw: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in raw.items():
        out += leaf_paths(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


PATHS = [*leaf_paths(TINY_RECIPE), "method.levels", "train.checkpoint_every", "train.epochs.x", "nope", ""]


def outcome(path: Path, overrides: list[str] = ()) -> Recipe | None:
    """The recipe, or None after checking the UserError; any other exception fails the test.

    The loader lists every problem it finds (#9), one short line each, each naming the file
    or the option.
    """
    try:
        # `--set` text is parsed by the CLI, then applied as typed overrides (#10)
        return load_recipe(path, parse_overrides(list(overrides)))
    except UserError as exc:
        lines = str(exc).splitlines()
        assert lines and all(0 < len(line) < 400 for line in lines), str(exc)
        assert all(str(path) in line or "--set" in line for line in lines), str(exc)
        return None


@SETTINGS
@given(document=VALUES)
def test_any_yaml_document_is_a_recipe_or_one_line_user_error(document, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(document))
    outcome(path)


@SETTINGS
@given(section=st.sampled_from(sorted(TINY_RECIPE)), value=VALUES)
def test_a_tiny_recipe_with_any_section_replaced_is_a_recipe_or_one_line_user_error(section, value, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**TINY_RECIPE, section: value}))
    outcome(path)


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_file_is_a_recipe_or_one_line_user_error(text, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    outcome(path)


@SETTINGS
@given(
    key=st.sampled_from(PATHS) | st.text(max_size=15),
    value=st.text(max_size=20) | VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
    sep=st.sampled_from(["=", "==", ":", ""]),
)
def test_any_override_is_a_recipe_or_one_line_user_error(key, value, sep, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(TINY_RECIPE))
    outcome(path, [f"{key}{sep}{value}"])
