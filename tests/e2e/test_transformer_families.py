"""ViT and GPT-2 through `paiexport run` at a tiny size, one epoch (tests/sparsity/test_hf_rules.py
and test_head_slicing.py test their rules on graphs): exit 0, every file validated, a compact
file with exactly half the heads and a quarter of the FFN neurons of every layer, static int8 for
the ViT (its patch embedding is a Conv), token inputs of any length for GPT-2; GPT-2's tied
embeddings refused by `train.compact` and trained small once untied, and a `bench.seq_lens`
length past its positions refused before training. The five runs go two at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import onnx
import pytest
import yaml
from hf_tiny import HF_REASON

pytest.importorskip("transformers", reason=HF_REASON)

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600  # seconds, for all the runs together
PARALLEL = min(2, os.cpu_count() or 1)  # runs at a time
BENCH = ["bench.batch_sizes=[1]", "bench.warmup=1", "bench.iterations=3"]
# scikit-learn's 8x8 digits (they ship) in 2x2 patches of 4x4: hidden 32 in 4 heads of 8, FFN 64.
VIT = {
    "name": "vit_heads50",
    "seed": 0,
    "data": {"name": "digits", "batch_size": 32},
    "model": {
        "name": "transformers:ViTForImageClassification",
        "args": {
            "config": {
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 64,
                "image_size": 8,
                "patch_size": 4,
                "num_channels": 1,
            }
        },
    },
    "sparsity": {"target": 0.5, "structure": "channel", "group_targets": {"heads": 0.5, "ffn": 0.75}},
    "method": {"name": "snip"},
    "train": {"epochs": 1, "optimizer": {"name": "adamw", "lr": 0.003}},
    "export": {"formats": ["dense", "compact", "int8", "auto"]},
    "bench": {"batch_sizes": [1], "warmup": 1, "iterations": 3},
}
# gpt_heads50 (a Llama config) as GPT-2: hidden 32 in 4 heads of 8, FFN 64, 128 positions.
GPT2 = {
    "n_embd": 32,
    "n_layer": 2,
    "n_head": 4,
    "n_inner": 64,
    "vocab_size": 98,
    "n_positions": 128,
    "bos_token_id": 0,
    "eos_token_id": 0,
}
GPT2_RUN = ["model.name=transformers:GPT2LMHeadModel", "train.epochs=1", "train.optimizer.lr=0.002", *BENCH]
VARIANTS = ("model.onnx", "model.compact.onnx", "model.int8.onnx", "model.compact.int8.onnx")


def command(recipe: str, out: Path, *sets: str) -> list[str]:
    args = [a for s in sets for a in ("--set", s)]
    return [sys.executable, "-m", "paiexport", "run", recipe, "--out", str(out), *args]


def gpt2(out: Path, *sets: str, **config: object) -> list[str]:
    """gpt_heads50 as a tiny GPT-2 (`config` overrides its keys), one epoch."""
    mapping = json.dumps({**GPT2, **config})  # JSON is YAML: the whole config mapping replaced
    return command("gpt_heads50", out, *GPT2_RUN, f"model.args.config={mapping}", *sets)


def side_by_side(commands: dict[str, list[str]], logs: Path) -> dict[str, subprocess.CompletedProcess]:
    """The CLI `commands`, PARALLEL at a time in the order given (each on 1 thread), their output
    in files under `logs`; the ones left are killed when they are not all done in TIMEOUT s."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    logs.mkdir()
    waiting, running, done = list(commands.items()), {}, {}
    deadline = time.monotonic() + TIMEOUT
    try:
        while waiting or running:
            while waiting and len(running) < PARALLEL:
                name, args = waiting.pop(0)
                with open(logs / f"{name}.out", "w") as out, open(logs / f"{name}.err", "w") as err:
                    running[name] = subprocess.Popen(args, cwd=logs, env=env, stdout=out, stderr=err)
            done |= {name: running.pop(name) for name in list(running) if running[name].poll() is not None}
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done in {TIMEOUT} s: {', '.join([*running, *dict(waiting)])}")
            time.sleep(0.1)
    finally:
        for process in running.values():
            process.kill()
            process.wait()
    return {
        name: subprocess.CompletedProcess(
            p.args, p.returncode, (logs / f"{name}.out").read_text(), (logs / f"{name}.err").read_text()
        )
        for name, p in done.items()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """Every run of this file, two at a time (the longest first): the ViT, GPT-2, and GPT-2 with
    `train.compact` tied and untied and with a length past its positions."""
    folder = tmp_path_factory.mktemp("families")
    recipe = folder / "vit_heads50.yaml"
    recipe.write_text(yaml.safe_dump(VIT))
    dense = "export.formats=[dense]"
    return folder, side_by_side(
        {
            "gpt2": gpt2(folder / "gpt2", "bench.seq_lens=[16,80]"),
            "untied": gpt2(folder / "untied", "train.compact=true", dense, tie_word_embeddings=False),
            "vit": command(str(recipe), folder / "vit"),
            "tied": gpt2(folder / "tied", "train.compact=true", dense),
            "long": gpt2(folder / "long", dense, "bench.seq_lens=[16,129]"),
        },
        folder / "logs",
    )


def finished(runs: tuple[Path, dict[str, subprocess.CompletedProcess]], name: str, code: int) -> Path:
    """The output folder of run `name`, which exited `code`."""
    folder, done = runs
    assert done[name].returncode == code, (done[name].stdout + done[name].stderr)[-3000:]
    return folder / name


def inputs(path: Path) -> list[tuple[str, int, list[object]]]:
    return [
        (
            i.name,
            i.type.tensor_type.elem_type,
            [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim],
        )
        for i in onnx.load(str(path)).graph.input
    ]


def dims(path: Path) -> tuple[dict[str, list[int]], Counter]:
    """The named initializers' dims, and how many unnamed float matrices (the exporter's
    transposed Linear weights, [in, out]) have each shape."""
    found = onnx.load(str(path)).graph.initializer
    named = {t.name: list(t.dims) for t in found if not t.name.startswith("val_")}
    matrices = [t for t in found if t.name.startswith("val_") and len(t.dims) == 2]
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in matrices)
    return named, Counter(tuple(t.dims) for t in matrices)


def report_of(out: Path, compact: bool = True) -> dict:
    report = json.loads((out / "report.json").read_text())
    assert all(check["passed"] for check in report["validation"].values()), report["validation"]
    if compact:
        assert report["validation"]["compact"]["parity"] and report["compact"]["torch_max_abs_diff"] <= 1e-4
    return report


def test_vit_keeps_exactly_half_its_heads_and_a_quarter_of_its_neurons_and_ships_static_int8(runs):
    out = finished(runs, "vit", 0)
    report = report_of(out)
    assert set(report["validation"]) == {"dense", "compact", "int8", "compact.int8", "deploy"}
    assert report["metrics"]["torch"]["accuracy"] > report["task"]["baseline"]
    assert report["export"]["int8_used"]["mode"] == "static"  # the Conv patch embedding: QDQ
    for variant in VARIANTS:
        assert inputs(out / variant) == [("input", onnx.TensorProto.FLOAT, ["batch", 1, 8, 8])], variant
    named, unnamed = dims(out / "model.compact.onnx")
    for layer in range(2):
        prefix = f"vit.layers.{layer}"
        for part in ("q_proj", "k_proj", "v_proj"):  # 2 of 4 heads of 8
            assert named[f"{prefix}.attention.{part}.bias"] == [16]
        assert named[f"{prefix}.mlp.fc1.bias"] == [16]  # 16 of 64 neurons
        assert named[f"{prefix}.attention.o_proj.bias"] == named[f"{prefix}.mlp.fc2.bias"] == [32]
    # per layer q, k, v and fc1 [32 -> 16], o_proj and fc2 [16 -> 32]: nothing else kept its width
    assert unnamed == Counter({(32, 16): 8, (16, 32): 4})
    assert dims(out / "model.onnx")[1] == Counter({(32, 32): 8, (32, 64): 2, (64, 32): 2})
    assert named["vit.embeddings.patch_embeddings.projection.weight"] == [32, 1, 4, 4]


def test_gpt2_keeps_exactly_half_its_heads_and_a_quarter_of_its_neurons_at_any_length(runs):
    out = finished(runs, "gpt2", 0)
    report = report_of(out)
    assert report["task"]["name"] == "language_model"
    assert report["metrics"]["torch"]["perplexity"] < report["task"]["baseline"]
    assert report["export"]["int8_used"]["mode"] == "dynamic"
    for variant in VARIANTS:
        assert inputs(out / variant) == [("input_ids", onnx.TensorProto.INT64, ["batch", "input_ids_1"])]
    named, unnamed = dims(out / "model.compact.onnx")
    for layer in range(2):
        prefix = f"transformer.h.{layer}"
        assert named[f"{prefix}.attn.c_attn.bias"] == [48]  # q, k and v of 2 of 4 heads of 8
        assert named[f"{prefix}.mlp.c_fc.bias"] == [16]  # 16 of 64 neurons
        assert named[f"{prefix}.attn.c_proj.bias"] == named[f"{prefix}.mlp.c_proj.bias"] == [32]
    # per layer c_attn [32 -> 48], c_fc [32 -> 16], both c_proj [16 -> 32]; the tied lm_head stays
    assert unnamed == Counter({(32, 48): 2, (32, 16): 2, (16, 32): 4, (32, 98): 1})
    assert dims(out / "model.onnx")[1] == Counter(
        {(32, 96): 2, (32, 32): 2, (32, 64): 2, (64, 32): 2, (32, 98): 1}
    )
    lengths = {(row["seq_len"], row["variant"]) for row in report["latency_by_seq_len"]}
    assert lengths >= {(n, v) for n in (16, 80) for v in ("dense", "compact", "int8", "compact.int8")}


def test_gpt2_train_compact_refuses_its_tied_embeddings_in_one_line(runs):
    out = finished(runs, "tied", 2)
    assert runs[1]["tied"].stderr.strip() == (
        "error: train.compact: transformer.wte.weight and lm_head.weight are one tied tensor, "
        "which a smaller network would untie; set train.compact: false"
    )
    assert not out.exists()


def test_gpt2_train_compact_trains_the_small_model_once_untied(runs):
    out = finished(runs, "untied", 0)
    report = report_of(out, compact=False)
    assert report["train_compact"]["params_trained"] < report["train_compact"]["params_full"]
    assert report["metrics"]["torch"]["perplexity"] < report["task"]["baseline"]
    named, unnamed = dims(out / "model.onnx")  # the small model itself, with its own lm_head
    for layer in range(2):
        assert named[f"transformer.h.{layer}.attn.c_attn.bias"] == [48]
        assert named[f"transformer.h.{layer}.mlp.c_fc.bias"] == [16]
    assert unnamed == Counter({(32, 48): 2, (32, 16): 2, (16, 32): 4, (32, 98): 1})
    assert named["transformer.wte.weight"] == [98, 32]


def test_a_sequence_length_past_gpt2s_positions_is_refused_before_training(runs):
    out = finished(runs, "long", 2)
    assert runs[1]["long"].stderr.strip() == (
        "error: bench.seq_lens: the model fails at sequence length 129 (its config: "
        "max_position_embeddings 128): IndexError: index out of range in self"
    )
    assert not out.exists()
