"""Compare paiexport's run of a SparseML GMP recipe with SparseML 1.8.0's own (not a test).

Both sides train the same 40-32-16-4 MLP for 4 epochs of 4 optimizer steps on the same
recipe and print every layer's zero count after each step; the script prints both, side
by side, and counts the steps where any layer differs. The paiexport side is the real run
path: `load_recipe` on the SparseML file, the `gmp` groups, `train` with KeepPrunedZero.

SparseML runs in its own venv. `pip install "sparseml[torch]==1.8.0" "sparsezoo==1.8.*"`
resolves to torch 2.14 + CUDA wheels (several GB), so the venv gets SparseML's pins only and
reuses this checkout's torch through a .pth file placed after its own site-packages:

    python3.11 -m venv /tmp/smlvenv
    /tmp/smlvenv/bin/pip install --no-deps sparseml==1.8.0 sparsezoo==1.8.1 numpy==1.26.4 \
        protobuf==3.20.3 onnx==1.14.1 pandas==2.2.3 pyyaml toposort merge-args pydantic==2.7.4 \
        pydantic_core==2.18.4 annotated-types typing_extensions packaging tqdm requests psutil \
        py-machineid geocoder ratelim future click six decorator pytz tzdata python-dateutil GPUtil
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/smlvenv/lib/python3.11/site-packages/zz.pth
    NM_DISABLE_ANALYTICS=1 python benchmarks/sparseml_compare.py /tmp/smlvenv/bin/python

Tags are on their own line: SparseML's loader (optim/helpers.py,
load_recipe_yaml_str_no_classes) only rewrites `!Name` when no `.` follows on the same
line, so `- !EpochRangeModifier {end_epoch: 4.0}` fails there (paiexport reads it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPE = """
modifiers:
  - !EpochRangeModifier
    start_epoch: 0.0
    end_epoch: 4.0
  - !GMPruningModifier
    params: [fc1.weight, fc2.weight]
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: 3.0
    update_frequency: 0.5
  - !GMPruningModifier
    params: [out.weight]
    init_sparsity: 0.0
    final_sparsity: 0.5
    start_epoch: 1.0
    end_epoch: 2.0
    update_frequency: 0.5
    inter_func: linear
"""
STEPS_PER_EPOCH, EPOCHS = 4, 4
LAYERS = ["fc1.weight", "fc2.weight", "out.weight"]
# 307 synthetic training samples in batches of 77: 4 optimizer steps per epoch, as SparseML's side.
SETS = [
    "data.name=synthetic",
    "data.batch_size=77",
    "data.val_fraction=0.2",
    "train.threads=1",
    "model.name=mlp",
    "model.args={hidden: [32, 16]}",
]

SPARSEML_SIDE = f"""
import json, torch
from torch import nn
from sparseml.pytorch.optim import ScheduledModifierManager
torch.manual_seed(0)
model = nn.Sequential()
model.add_module("fc1", nn.Linear(40, 32)); model.add_module("fc2", nn.Linear(32, 16))
model.add_module("out", nn.Linear(16, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
manager = ScheduledModifierManager.from_yaml({RECIPE!r})
opt = manager.modify(model, opt, steps_per_epoch={STEPS_PER_EPOCH})
rows = []
for step in range({STEPS_PER_EPOCH * EPOCHS}):
    opt.zero_grad(); model(torch.randn(8, 40)).pow(2).mean().backward(); opt.step()
    rows.append({{n: int((p == 0).sum()) for n, p in model.named_parameters() if n.endswith("weight")}})
print(json.dumps(rows))
"""


def paiexport_side() -> list[dict[str, int]]:
    """Zero counts after each optimizer step of paiexport's own run of RECIPE."""
    from paiexport.recipe import load_recipe
    from paiexport.runs.stages import prepare
    from paiexport.sparsity.masks import attach_masks, prunable_weights
    from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
    from paiexport.training.loop import train

    rows: list[dict[str, int]] = []

    class Zeros(TrainCallback):
        def on_step_end(self, state: TrainState) -> None:
            weights = prunable_weights(state.model)
            rows.append({n: int((weights[n] == 0).sum()) for n in LAYERS})

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gmp.yaml"
        path.write_text(RECIPE)
        from paiexport.cli.overrides import parse_overrides

        recipe = load_recipe(path, parse_overrides(SETS))
        data, model, method, ctx = prepare(recipe)
        attach_masks(model, method.select(ctx))
        callbacks = [KeepPrunedZero(), *method.callbacks(ctx), Zeros()]
        train(
            model,
            data,
            recipe.train,
            batch_size=77,
            seed=0,
            metrics_path=Path(tmp) / "m.jsonl",
            checkpoint_dir=Path(tmp) / "ck",
            callbacks=callbacks,
        )
    return rows


def main() -> None:
    python = sys.argv[1] if len(sys.argv) > 1 else "/tmp/smlvenv/bin/python"
    if not Path(python).exists():
        raise SystemExit(f"{python}: no SparseML venv there; the module docstring shows how to make one")
    env = {**os.environ, "NM_DISABLE_ANALYTICS": "1"}
    done = subprocess.run([python, "-c", SPARSEML_SIDE], capture_output=True, text=True, cwd="/tmp", env=env)
    if done.returncode != 0:
        print("SparseML side failed:\n" + done.stderr[-3000:])
        raise SystemExit(1)
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = paiexport_side()
    differ = 0
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        same = all(a[n] == b[n] for n in LAYERS)
        differ += not same
        mark = "" if same else "  DIFFERS"
        print(f"step {step:2d}  paiexport {a}  sparseml { {n: b[n] for n in LAYERS} }{mark}")
    print(f"{len(ours)} steps, {differ} with a different zero count in any layer")


if __name__ == "__main__":
    main()
