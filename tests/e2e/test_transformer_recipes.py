"""The bundled transformer recipes through `paiexport run` at a tiny size (hidden 32, 4 heads, FFN
64, one epoch): exit 0, int64 token inputs with dynamic batch and sequence axes, a compact file
with exactly half the heads and a quarter of the FFN neurons of every layer at parity, latency
at every `bench.seq_lens` length. (tests/e2e/test_bundled_recipes_cli.py leaves these two to
this file.)"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from hf_tiny import HF_REASON, TINY_RECIPE_SETS

pytest.importorskip("transformers", reason=HF_REASON)

ROOT = Path(__file__).resolve().parents[2]
TRANSFORMER_RECIPES = ("bert_heads50", "gpt_heads50")
TINY = [
    *TINY_RECIPE_SETS,
    "bench.warmup=1",
    "bench.iterations=3",
    "bench.seq_lens=[16,80]",
]
OPENVINO = importlib.util.find_spec("openvino") is not None  # the [test] extra installs it
# bert_heads50 is also validated and timed in OpenVINO, two int64 inputs fed to every file there
EXTRA = {
    "gpt_heads50": ["model.args.config.num_key_value_heads=4"],
    "bert_heads50": ["bench.runtimes=[onnxruntime,openvino]"] if OPENVINO else [],
}


def run(name: str, out: Path) -> subprocess.CompletedProcess:
    sets = [arg for o in [*TINY, *EXTRA.get(name, [])] for arg in ("--set", o)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "paiexport", "run", name, "--out", str(out), *sets]
    return subprocess.run(command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=300)


def inputs(path: Path) -> list[tuple[str, int, list[object]]]:
    model = onnx.load(str(path))
    return [
        (
            i.name,
            i.type.tensor_type.elem_type,
            [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim],
        )
        for i in model.graph.input
    ]


def initializer_dims(path: Path) -> dict[str, list[int]]:
    return {t.name: list(t.dims) for t in onnx.load(str(path)).graph.initializer}


def check_run(out: Path, expected_inputs: list[str]) -> dict:
    report = json.loads((out / "report.json").read_text())
    int64 = onnx.TensorProto.INT64
    for variant in ("model.onnx", "model.compact.onnx", "model.int8.onnx", "model.compact.int8.onnx"):
        found = inputs(out / variant)
        assert [(n, t) for n, t, _ in found] == [(n, int64) for n in expected_inputs], variant
        assert all(len(dims) == 2 and all(isinstance(d, str) for d in dims) for _, _, dims in found), found
    assert all(check["passed"] for check in report["validation"].values()), report["validation"]
    assert report["validation"]["compact"]["parity"] and report["compact"]["torch_max_abs_diff"] <= 1e-4
    assert report["compact"]["params_after"] < report["compact"]["params_before"]
    assert (out / "model.compact.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    lengths = {(row["seq_len"], row["variant"]) for row in report["latency_by_seq_len"]}
    variants = {"dense", "compact", "int8", "compact.int8"}
    assert {n for n, v in lengths if v in variants} == {16, 80} and {v for _, v in lengths} >= variants
    assert "## Latency per sequence length" in (out / "report.md").read_text()
    return report


def test_bert_heads50_at_a_tiny_size_runs_and_keeps_exactly_its_heads_and_neurons(tmp_path):
    out = tmp_path / "bert"
    done = run("bert_heads50", out)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = check_run(out, ["input_ids", "attention_mask"])
    assert report["metrics"]["torch"]["accuracy"] > report["task"]["baseline"]
    dims = initializer_dims(out / "model.compact.onnx")
    for layer in range(2):
        prefix = f"bert.encoder.layer.{layer}"
        for part in ("query", "key", "value"):  # 2 of 4 heads of 8
            assert dims[f"{prefix}.attention.self.{part}.bias"] == [16]
        assert dims[f"{prefix}.intermediate.dense.bias"] == [16]  # 16 of 64 neurons
        assert dims[f"{prefix}.attention.output.dense.bias"] == [32]  # the hidden size stays
    assert initializer_dims(out / "model.onnx")[f"{prefix}.intermediate.dense.bias"] == [64]
    # The embeddings' sum and two residuals per layer feed a LayerNorm: written as Sum, which
    # onnxruntime does not fuse into its slow SkipLayerNormalization CPU kernel.
    assert report["export"]["residual_sums"] == 5
    if OPENVINO:  # every file loads there, floats at parity, int8 within the limit
        in_openvino = {v: c["runtimes"]["openvino"] for v, c in report["validation"].items()}
        assert all(c["loads"] and c["deployable"] for c in in_openvino.values()), in_openvino
        assert in_openvino["compact"]["parity"] and in_openvino["compact"]["max_abs_diff"] <= 1e-4
    assert "- 5 residual Adds before a LayerNormalization written as Sum" in (out / "report.md").read_text()


def test_gpt_heads50_at_a_tiny_size_runs_as_a_language_model(tmp_path):
    out = tmp_path / "gpt"
    done = run("gpt_heads50", out)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = check_run(out, ["input_ids"])
    assert report["task"]["name"] == "language_model"
    assert report["metrics"]["torch"]["perplexity"] < report["task"]["baseline"]
    assert report["compact"]["params_after"] <= 0.55 * report["compact"]["params_before"]
    assert report["export"]["residual_sums"] == 0  # RMSNorm: no LayerNormalization to fuse with
