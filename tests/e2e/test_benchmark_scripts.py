"""The benchmark scripts still run against the library (they are not in the import graph
that the rest of the suite exercises, so an API change can break them silently)."""

from __future__ import annotations

import importlib
from pathlib import Path

import onnx
import pytest
import yaml
from tiny import TINY_RECIPE
from typer.testing import CliRunner

import benchmarks.bench_under_load as bench_under_load
import benchmarks.deploy_speed as deploy_speed
import benchmarks.int8_formats as int8_formats
import benchmarks.runtimes as runtimes
import benchmarks.tasks as tasks_benchmark
from paiexport.cli import app

SCRIPTS = sorted(
    p.stem for p in (Path(__file__).parents[2] / "benchmarks").glob("*.py") if p.stem != "__init__"
)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_imports(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.__doc__, f"benchmarks/{name}.py says what it measures"


def test_deploy_speed_resnet_part_runs_end_to_end(tmp_path, capsys):
    # tiny and untimed: the verdict is not asserted, only that every file is built,
    # benchmarked and compared (the figures come from the real run, docs/deployment-and-speed.md)
    deploy_speed.resnet_part(epochs=1, samples=128, iterations=1, out=tmp_path)
    printed = capsys.readouterr().out
    for label in (
        "compact speedup vs dense, batch 64",
        "compact.int8 speedup vs dense, batch 1",
        "compact.plain, without space_to_depth",
        "compact accuracy - torch",
    ):
        assert label in printed
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == [
        "compact.int8.onnx",
        "compact.onnx",
        "compact.plain.onnx",
        "dense.onnx",
    ]


def test_bench_under_load_quick_runs_end_to_end(capsys):
    # CI size (a narrow 1-epoch model, 10 iterations, a few seconds of load): every file is
    # benchmarked idle and loaded and compared; the verdict depends on the machine, not asserted
    bench_under_load.main(["--quick"])
    printed = capsys.readouterr().out
    assert "idle phase: " in printed and "loaded phase: " in printed
    assert "loaded cpu within 15% of idle cpu" in printed
    rows = [
        line.split()
        for line in printed.splitlines()
        if line.split()[:1] in (["compact"], ["int8"], ["compact.int8"])
    ]
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        (v, b) for v in ("compact", "int8", "compact.int8") for b in ("1", "64")
    )
    assert all(r[-1] in ("yes", "NO") and r[2].endswith("×") for r in rows)
    assert "loaded cpu ratios within 15% of idle cpu: " in printed


def test_int8_formats_channel_part_prints_every_file_against_dense(tmp_path, capsys):
    # a tiny convolutional run stands in for synflow_channel75; untimed (1 iteration): the
    # figures come from the real run (docs/deployment-and-speed.md)
    raw = yaml.safe_load(yaml.safe_dump(TINY_RECIPE))
    raw["model"] = {"name": "cnn1d", "args": {"channels": [8, 8], "hidden": 16}}
    raw["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    raw["export"].update({"formats": ["dense", "compact"], "calibration_samples": 32})
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    args = ["run", str(tmp_path / "recipe.yaml"), "--out", str(run), "--set", "train.epochs=1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    int8_formats.channel_part(run, epochs=1, iterations=1, out=tmp_path / "bench")
    printed = capsys.readouterr().out
    kinds = ("qdq", "qoperator", "dynamic")
    names = ["dense", "compact", *(f"{base}.{kind}" for base in ("dense", "compact") for kind in kinds)]
    for name in names:
        assert any(line.split()[:1] == [name] for line in printed.splitlines()), name
    assert "dense batch 64: QOperator / QDQ median" in printed
    qdq = next(line for line in printed.splitlines() if line.split()[:1] == ["compact.qdq"])
    qop = next(line for line in printed.splitlines() if line.split()[:1] == ["compact.qoperator"])
    assert qdq.endswith("standard ONNX") and qop.endswith("uses com.microsoft")
    written = sorted(p.name for p in (tmp_path / "bench" / "channel_files").glob("*.onnx"))
    assert written == sorted(f"{name}.onnx" for name in names)


def test_tasks_quick_prints_dense_and_sparse_per_example(tmp_path, capsys):
    # CI size (1 epoch, 3 timing iterations) on two of the examples, one metric of each
    # direction; the figures come from the real run (README "Tasks")
    rows = tasks_benchmark.main(["--quick", "--examples", "regression,custom_task", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("| `examples/")]
    assert [line.split(" | ")[:3] for line in table] == [
        ["| `examples/regression`", "regression", "r2 ↑"],
        ["| `examples/custom_task`", "custom", "pinball ↓"],
    ]
    for row in rows:
        assert row["sparsity"] > 0.79 and row["params_after"] < row["params_before"]
        assert all(row["speedups"][v][b] for v in tasks_benchmark.SPEEDUPS for b in ("1", "64"))
    header = next(line for line in printed.splitlines() if line.startswith("| example |"))
    assert "compact.int8 ×b64" in header
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "custom_task-dense",
        "custom_task-sparse",
        "regression-dense",
        "regression-sparse",
    ]


def test_runtimes_channel_part_prints_every_file_in_both_runtimes(tmp_path, capsys):
    # a tiny convolutional run stands in for synflow_channel75; untimed (1 iteration): the
    # figures come from the real run (docs/deployment-and-speed.md)
    pytest.importorskip("openvino", reason="openvino is an optional extra: pip install 'paiexport[openvino]'")
    raw = yaml.safe_load(yaml.safe_dump(TINY_RECIPE))
    raw["model"] = {"name": "cnn1d", "args": {"channels": [8, 8], "hidden": 16}}
    raw["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    raw["export"].update(
        {"formats": ["dense", "compact", "int8"], "int8": "static", "calibration_samples": 32}
    )
    raw["bench"]["runtimes"] = ["onnxruntime", "openvino"]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    args = ["run", str(tmp_path / "recipe.yaml"), "--out", str(run), "--set", "train.epochs=1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    runtimes.channel_part(run, epochs=1, iterations=1, out=tmp_path / "bench", quick=True)
    printed = capsys.readouterr().out
    rows = [
        line.split() for line in printed.splitlines() if line.split()[1:2] in (["onnxruntime"], ["openvino"])
    ]
    names = ("dense", "compact", "int8", "compact.int8")
    assert sorted((r[0], r[1]) for r in rows) == sorted((n, rt) for n in names for rt in runtimes.RUNTIMES)
    assert all(r[3].endswith("x") and r[4].endswith("x") and r[-1].endswith("%") for r in rows)
    assert "onnxruntime / openvino, same file (> 1: openvino faster):" in printed
    assert "openvino" in printed and ": f32 (CPU default " in printed


def test_runtimes_without_openvino_exits_naming_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(SystemExit) as caught:
        runtimes.main(["--quick"])
    assert caught.value.code == "error: --runtime openvino: not installed; pip install 'paiexport[openvino]'"


def test_transformer_speed_quick_prints_every_file_at_every_cell(tmp_path, capsys):
    # CI size (2 layers, hidden 64, 2 iterations): every file built from the pruned encoder and
    # timed; the goals are for BERT-base (docs/transformers.md), not asserted here
    pytest.importorskip("transformers", reason="needs transformers (pip install 'paiexport[hf]')")
    import benchmarks.transformer_speed as transformer_speed

    assert transformer_speed.main(["--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    main_table, with_adds = printed.split("residual Adds kept (export.fuse_skip_layernorm: true):")
    for table, cells in ((main_table, 6), (with_adds, 2)):
        rows = {
            line[:14].strip(): line[14:].split()
            for line in table.splitlines()
            if line[:14].strip() in transformer_speed.FILES
        }
        assert list(rows) == list(transformer_speed.FILES)
        assert all(len(row) == cells and all(c.endswith("×") for c in row[1::2]) for row in rows.values())
        assert rows["dense fp32"][1::2] == ["1.00×"] * (cells // 2)
    assert "compact at batch 1, sequence 128: " in printed and "dense int8 alone: " in printed
    diff = float(printed.split("max abs diff of the logits: ")[1].split()[0])
    assert diff <= 1e-4
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == [
        "compact.int8.onnx",
        "compact.onnx",
        "dense.int8.onnx",
        "dense.onnx",
    ]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "compact.int8.onnx")).graph.node}
    assert "Sum" in ops  # the files as paiexport writes them (export.fuse_skip_layernorm: false)
    adds = {n.op_type for n in onnx.load(str(tmp_path / "adds" / "compact.int8.onnx")).graph.node}
    assert "Sum" not in adds


def test_train_compact_bert_part_times_every_variant(capsys):
    # a 32-wide encoder, 1 epoch, 1 seed: every variant of bert_heads50 trains through the
    # library; the goals are for the real run (docs/transformers.md), not asserted here
    pytest.importorskip("transformers", reason="needs transformers (pip install 'paiexport[hf]')")
    import benchmarks.train_compact as train_compact

    train_compact.main(["--model", "bert", "--width", "32", "--epochs", "1", "--seeds", "1"])
    printed = capsys.readouterr().out
    params = {
        line.split()[2]: int(line.split()[-1]) for line in printed.splitlines() if line.startswith("seed 0 ")
    }
    assert list(params) == ["dense", "masked", "compact"]
    assert params["dense"] == params["masked"] > params["compact"]
    assert "compact vs dense epoch time: " in printed and "(goal >= 2)" in printed


def test_transformer_recipes_table_is_mean_and_spread_over_seeds(monkeypatch, tmp_path, capsys):
    """The seeds loop and the table, with the runs replaced by reports of known figures (a real
    run of both recipes takes minutes: `--quick` is for a person, not this suite)."""
    import benchmarks.transformer_recipes as transformer_recipes

    figures = {("dense", 0): 0.40, ("sparse", 0): 0.42, ("dense", 1): 0.44, ("sparse", 1): 0.40}
    seen = []

    def fake_run(recipe, out, overrides):
        seen.append((recipe, out.name, overrides["seed"], overrides.get("method.name")))
        kind, seed = out.name.split("-")[1], int(out.name.split("-")[2])
        return {
            "task": {"name": "classification", "primary": "accuracy", "higher_is_better": True}
            | {"baseline": 0.2},
            "metrics": {"torch": {"accuracy": figures[(kind, seed)]}},
            "compact": {"params_before": 1000, "params_after": 400},
            "recipe": {"train": {"epochs": 8}},
        }

    monkeypatch.setattr(transformer_recipes, "run", fake_run)
    rows = transformer_recipes.main(["--seeds", "2", "--recipes", "bert_heads50", "--out", str(tmp_path)])
    assert [s[1:] for s in seen] == [
        ("bert_heads50-dense-0", 0, "dense"),
        ("bert_heads50-sparse-0", 0, None),
        ("bert_heads50-dense-1", 1, "dense"),
        ("bert_heads50-sparse-1", 1, None),
    ]
    assert rows[0]["difference"] == pytest.approx([0.02, -0.04])
    # mean ± sample standard deviation: dense (0.40, 0.44) -> 0.42 ± 0.028
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("| `bert_heads50`"))
    assert "| 0.42 ± 0.028 | 0.41 ± 0.014 | -0.01 ± 0.042 | 400 / 1,000 | 8 |" in line


def test_transformer_recipes_refuses_an_unknown_recipe(capsys):
    import benchmarks.transformer_recipes as transformer_recipes

    with pytest.raises(SystemExit) as exited:
        transformer_recipes.main(["--recipes", "nope"])
    assert exited.value.code == 2 and "no recipes/<name>.yaml for: nope" in capsys.readouterr().err
