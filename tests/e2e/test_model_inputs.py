"""What users' models look like (#22): token ids and an attention mask (a dict x) through `run`.

A factory dataset yields ({"input_ids", "attention_mask"}, class); the factory model pools the
masked embeddings and returns (features, logits), `task.output: "1"` reads the logits. The run
trains, exports int64 inputs named after forward's arguments and both outputs, and validates
parity on every output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

TOKENS = '''
import torch
from torch import nn
from torch.utils.data import Dataset

VOCAB, LENGTH = 12, 6


class Tokens(Dataset):
    """Class 1 iff token 1 opens the sequence; the mask hides a random tail."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, VOCAB, (n, LENGTH), generator=g)
        self.y = torch.arange(n) % 2
        self.ids[self.y == 1, 0] = 1
        lengths = torch.randint(2, LENGTH + 1, (n,), generator=g)
        self.mask = (torch.arange(LENGTH)[None] < lengths[:, None]).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}, int(self.y[i])


def datasets():
    return Tokens(192, 0), Tokens(64, 1)


class Pooled(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.hidden = nn.Linear(16, 32)
        self.head = nn.Linear(32, num_classes)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        features = torch.relu(self.hidden(pooled))
        return features, self.head(features)


def build(num_classes=2):
    return Pooled(num_classes)
'''


def run(folder: Path, **sections) -> subprocess.CompletedProcess:
    (folder / "tokens.py").write_text(TOKENS)
    raw = {
        "name": "tokens",
        "task": {"name": "classification", "output": "1"},
        "data": {"name": "tokens:datasets", "batch_size": 16, "val_fraction": 0.25},
        "model": {"name": "tokens:build"},
        "sparsity": {"target": 0.5, "distribution": "global"},
        "method": {"name": "snip"},
        "train": {"epochs": 4, "optimizer": {"name": "adam", "lr": 0.01}},
        "export": {"formats": ["dense", "int8"], "int8": "static", "calibration_samples": 32},
        "bench": {"batch_sizes": [1], "threads": [1], "warmup": 0, "iterations": 2},
    }
    for section, fields in sections.items():
        raw[section] = {**raw.get(section, {}), **fields}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "paiexport", "run", "recipe.yaml", "--out", "run"]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=180)


def test_token_ids_and_a_mask_train_export_and_validate_with_parity_on_both_outputs(tmp_path):
    done = run(tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    dense = onnx.load(str(tmp_path / "run" / "model.onnx"))
    int64 = onnx.TensorProto.INT64
    expected = [("input_ids", int64), ("attention_mask", int64)]
    assert [(i.name, i.type.tensor_type.elem_type) for i in dense.graph.input] == expected
    assert [o.name for o in dense.graph.output] == ["output_0", "output_1"]
    props = {p.key: p.value for p in dense.metadata_props}
    assert props["paiexport.input_vocab"] == "input_ids=12,attention_mask=2"
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    checks = report["validation"]
    assert checks["dense"]["parity"] and checks["dense"]["max_abs_diff"] < 1e-4
    assert checks["dense"]["accuracy"] == checks["dense"]["accuracy_torch"] > 0.8  # the logits, output 1
    assert checks["int8"]["passed"] and not checks["int8"]["parity_required"]
    int8 = onnx.load(str(tmp_path / "run" / "model.int8.onnx"))
    assert [(i.name, i.type.tensor_type.elem_type) for i in int8.graph.input] == expected


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"export": {"dynamic_axes": {"tokens": [1]}}},
            "export.dynamic_axes: no input 'tokens' (the model's inputs: input_ids, attention_mask)",
        ),
        (
            {"data": {"normalize": "auto"}},
            "data.normalize: needs one input per sample; the samples have several (a tuple or dict)",
        ),
    ],
)
def test_what_cannot_apply_to_these_inputs_is_refused_before_training(tmp_path, sections, message):
    done = run(tmp_path, **sections)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2 and output == f"error: {message}", output[-3000:]
    assert not (tmp_path / "run").exists()
