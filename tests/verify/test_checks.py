"""One owner per rule: each decision below is made in one place, so two callers never disagree."""

import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.data import DataConfig, load_dataset
from paiexport.errors import UserError, first_line
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.methods.dynamic import drop_count
from paiexport.methods.gmp_groups import GMPGroup, GroupedPruning
from paiexport.reporting.schema import RunReport
from paiexport.sparseml.schedule import pruned_count
from paiexport.sparsity.allocation import allocate_masks, layer_keep_counts, total_keep
from paiexport.sparsity.counts import kept, kept_at_density, removed
from paiexport.sparsity.types import Distribution
from paiexport.sweep import parse_grid
from paiexport.training.callbacks import TrainState
from paiexport.verify import rules
from paiexport.verify.checks import is_quantized
from paiexport.verify.file_checks import check_file
from paiexport.verify.validate import onnx_weight_sparsity, validate_file

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# --- one validator core: `run`'s validation and `paiexport validate` decide alike ----------


@pytest.fixture(scope="module")
def float_and_qdq(tmp_path_factory):
    """A float Linear(40, 4) on the synthetic data and the same weights stored as int8 behind a
    DequantizeLinear (weight-only QDQ: no QuantizeLinear, no QLinear/Integer op)."""
    tmp = tmp_path_factory.mktemp("qdq")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 4))
    with torch.no_grad():
        model[1].weight[0, :10] = 0.0
    float_path = tmp / "float.onnx"
    save_onnx(to_onnx(model, (1, 40), 18), float_path)
    w = model[1].weight.detach().numpy().T  # (40, 4)
    scale = float(np.abs(w).max() / 127)
    inits = [
        numpy_helper.from_array(np.round(w / scale).astype(np.int8), "wq"),
        numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
        numpy_helper.from_array(model[1].bias.detach().numpy(), "bias"),
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["w"]),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, 40])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    qdq_path = tmp / "qdq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(qdq_path))
    test = load_dataset(DataConfig(name="synthetic"), seed=0).test
    return model, float_path, qdq_path, test


def test_a_weight_only_qdq_file_is_quantized_for_run_and_validate_alike(float_and_qdq):
    model, float_path, qdq_path, test = float_and_qdq
    assert is_quantized(onnx.load(str(qdq_path))) and not is_quantized(onnx.load(str(float_path)))
    # run's validation: decided from the file, whatever the variant is called
    assert validate_file(qdq_path, "dense", model, test).parity_required is False
    assert validate_file(float_path, "int8", model, test).parity_required is True
    # paiexport validate: a lossy file vs a float reference is judged by its drop, not parity
    lossy = check_file(qdq_path, "synthetic", float_path, 1.0, seed=0)
    assert "accuracy_drop" in [c.name for c in lossy.checks] and "parity" not in [
        c.name for c in lossy.checks
    ]
    exact = check_file(float_path, "synthetic", float_path, 1.0, seed=0)
    assert "parity" in [c.name for c in exact.checks]
    # and both measure the float weight's sparsity the same way (10 of 160 zero)
    name = next(t.name for t in onnx.load(str(float_path)).graph.initializer if t.dims == [4, 40])
    assert onnx_weight_sparsity(float_path, [name])[name] == exact.sparsity[name] == 10 / 160


def _tiny_file(tmp_path: Path) -> Path:
    weight = numpy_helper.from_array(np.ones((40, 4), np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["f"], axis=1),
            helper.make_node("MatMul", ["f", "W"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


class _FailsToRun:
    """A real session whose `run` raises an exception with an empty message."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, *args, **kwargs):
        raise RuntimeError("")


@pytest.mark.parametrize("where", ["load", "input"])
def test_an_exception_with_an_empty_message_is_a_failed_check_not_an_index_error(
    tmp_path, monkeypatch, where
):
    path = _tiny_file(tmp_path)
    real = onnxruntime.InferenceSession

    def session(*args, **kwargs):
        if where == "load":
            raise RuntimeError("")
        return _FailsToRun(real(*args, **kwargs))

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    result = invoke("validate", str(path), "--data", "synthetic")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"broken, failed check: {where}" in result.output
    line = next(x for x in result.output.splitlines() if f"{where}:" in x)
    assert line.rstrip().endswith(": RuntimeError"), line


def test_first_line_without_the_kind():
    assert first_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert first_line(ValueError("bad\nmore"), kind=False) == "bad"
    assert first_line(ValueError("  "), kind=False) == first_line(ValueError()) == "ValueError"


# --- requires-python covers what the code uses ---------------------------------------------


def test_requires_python_and_ruff_target_cover_strenum():
    """`enum.StrEnum` (paiexport/variant.py and the config enums) exists from Python 3.11."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert "StrEnum" in (ROOT / "paiexport" / "variant.py").read_text()


# --- one rounding rule for "how many weights does a fraction keep" -------------------------


def test_kept_counts_by_hand():
    assert kept(3, 0.5) == 2 and removed(3, 0.5) == 1  # 1.5 kept: ties to even
    assert kept(5, 0.5) == 2 and kept(1, 0.5) == 0  # 2.5 -> 2, 0.5 -> 0
    assert kept(10, 0.9) == 1 and kept(160, 0.9) == 16 and kept(7, 0.0) == 7 and kept(7, 1.0) == 0
    assert kept(0, 0.5) == 0 and kept_at_density(4, 0.6) == 2  # 2.4


def test_allocation_gmp_groups_and_dynamic_keep_the_same_of_3_at_half():
    """n = 3 weights, fraction 0.5: every place keeps 2 (they kept 2, 1 and 1 before)."""
    scores = {"a": torch.tensor([3.0, 2.0, 1.0])}
    assert total_keep({"a": 3}, 0.5) == 2 and layer_keep_counts({"a": (3,)}, 0.5, Distribution.uniform) == {
        "a": 2
    }
    assert int(allocate_masks(scores, 0.5, Distribution.global_)["a"].sum()) == 2
    # gmp groups (SparseML's gradual pruning): zeroes removed(3, 0.5) = 1
    assert pruned_count(3, 0.5) == 1
    model = nn.Sequential(nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3.0, 1.0, 2.0]]))
    mask = _gmp_group_mask(model, 0.5)
    assert mask.tolist() == [[True, False, True]]
    # dynamic: of 3 active weights, a drop fraction of 0.5 drops 1 and keeps 2
    assert drop_count(torch.tensor([True, True, True, False, False, False]), 0.5) == 1


def _gmp_group_mask(model: nn.Module, target: float) -> torch.Tensor:
    """The mask a `layer` GMP group sets on `0.weight` for `target`."""
    group = GMPGroup(
        params=["0.weight"], final_sparsity=target, start_epoch=0, end_epoch=1, update_frequency=1
    )
    pruning = GroupedPruning([group])
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    state = TrainState(model, opt, nn.functional.cross_entropy, 1, 2, lambda record: None)
    pruning.on_train_begin(state)
    pruning._update(state, 0, group, target)
    return model[0].weight_mask.bool()


# --- one top-k -----------------------------------------------------------------------------


def test_gmp_groups_break_ties_like_top_k_mask():
    """Eight equal |w|, two to prune: the lower indices stay (torch.topk pruned 5 and 6)."""
    model = nn.Sequential(nn.Linear(8, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.5)
    assert _gmp_group_mask(model, 0.25).tolist() == [[True] * 6 + [False] * 2]


# --- the min-sparsity gate's tolerance lives with the other tolerances ---------------------


def test_min_sparsity_tolerance_is_owned_by_rules(monkeypatch):
    from paiexport.reporting.gates import sparsity_gate

    assert rules.reaches_sparsity(899, 1000, 0.9) and not rules.reaches_sparsity(898, 1000, 0.9)
    assert rules.reaches_sparsity(900, 1000, 0.9)
    per_layer = {"a.weight": {"numel": 1000}}
    report = RunReport.model_validate({"sparsity": {"target": 0.9, "reached": 0.899, "per_layer": per_layer}})
    assert sparsity_gate(report, 0.9).passed
    monkeypatch.setattr(rules, "SPARSITY_SLACK_WEIGHTS", 0)
    assert not sparsity_gate(report, 0.9).passed


# --- user YAML goes through the bounded loader ---------------------------------------------

# 10**6 values once expanded, in block style (a --grid value is split at commas)
BOMB = "a: &a\n" + "".join("- x\n" for _ in range(10))
BOMB += "".join(f"{c}: &{c}\n" + f"- *{p}\n" * 10 for p, c in zip("abcde", "bcdef", strict=True))
REFUSED = "refused: more than 100000 values once aliases are expanded"


def test_a_grid_value_alias_bomb_is_refused():
    with pytest.raises(UserError, match=f"^--grid model.args: value {REFUSED}$"):
        parse_grid(f"model.args={BOMB}")


def test_a_grid_value_alias_bomb_exits_2_in_one_line(tmp_path, write_recipe, tiny_recipe_dict):
    recipe = str(write_recipe(tiny_recipe_dict))
    result = invoke("sweep", recipe, "--grid", f"model.args={BOMB}", "--out", str(tmp_path / "s"))
    assert result.exit_code == 2 and REFUSED in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_a_validate_recipe_alias_bomb_exits_2_in_one_line(tmp_path):
    path = _tiny_file(tmp_path)
    bomb = tmp_path / "recipe.yaml"
    bomb.write_text("data: {name: synthetic}\n" + BOMB)
    result = invoke("validate", str(path), "--recipe", str(bomb))
    assert result.exit_code == 2 and f"--recipe {bomb}: recipe {REFUSED}" in result.output
    assert len(result.output.strip().splitlines()) == 1
