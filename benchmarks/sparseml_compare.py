"""Compare paiexport's GMP schedule with SparseML's own, per layer and step (not a test).

    python3.11 -m venv /tmp/smlvenv && /tmp/smlvenv/bin/pip install "sparseml[torch]==1.8.0"
    python benchmarks/sparseml_compare.py [/tmp/smlvenv/bin/python]

The SparseML side runs in its own venv (old pins: numpy<2, onnx 1.14, protobuf 3.20) and
prints each layer's sparsity after every optimizer step; this side replays the same
recipe with paiexport.sparsity.gradual and compares zero counts exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

RECIPE = """
modifiers:
  - !EpochRangeModifier {start_epoch: 0.0, end_epoch: 4.0}
  - !GMPruningModifier
    params: [fc1.weight, fc2.weight]
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: 3.0
    update_frequency: 0.5
"""
STEPS_PER_EPOCH, EPOCHS, SIZES = 4, 4, {"fc1.weight": 32 * 40, "fc2.weight": 16 * 32}

SPARSEML_SIDE = f"""
import json, torch
from torch import nn
from sparseml.pytorch.optim import ScheduledModifierManager
torch.manual_seed(0)
model = nn.Sequential()
model.add_module("fc1", nn.Linear(40, 32)); model.add_module("fc2", nn.Linear(32, 16))
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
    from paiexport.sparsity.gradual import epoch_of_step, interpolate, pruned_count, pruning_update_epochs

    group = SimpleNamespace(start_epoch=0.0, end_epoch=3.0, update_frequency=0.5, init_sparsity=0.05,
                            inter_func="cubic")  # fmt: skip
    updates = set(pruning_update_epochs(group, STEPS_PER_EPOCH, STEPS_PER_EPOCH * EPOCHS))
    rows, target = [], 0.0
    for step in range(STEPS_PER_EPOCH * EPOCHS):
        e = epoch_of_step(step, STEPS_PER_EPOCH)
        if e in updates:
            target = interpolate(e, 0.0, 3.0, 0.05, 0.8, "cubic")
        rows.append({n: pruned_count(size, target) for n, size in SIZES.items()})
    return rows


def main() -> None:
    python = sys.argv[1] if len(sys.argv) > 1 else "/tmp/smlvenv/bin/python"
    done = subprocess.run([python, "-c", SPARSEML_SIDE], capture_output=True, text=True, cwd="/tmp")
    if done.returncode != 0:
        print("SparseML side failed:\n" + done.stderr[-3000:])
        raise SystemExit(1)
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = paiexport_side()
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        mark = "" if all(a[n] == b[n] for n in SIZES) else "  DIFFERS"
        print(f"step {step:2d}  paiexport {a}  sparseml { {n: b[n] for n in SIZES} }{mark}")


if __name__ == "__main__":
    main()
