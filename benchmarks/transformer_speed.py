"""A BERT-base-shaped encoder with half its heads and three quarters of its FFN neurons removed:
dense fp32 vs dense int8 vs compact vs compact int8 in onnxruntime.

    python -m benchmarks.transformer_speed [--quick] [--iterations 20] [--out DIR]

transformers' BertForSequenceClassification from a config (12 layers, hidden 768, 12 heads of 64,
FFN 3072, vocabulary 30522, 2 labels), random init: speed does not depend on the weights. The
library's own path does the rest: the channel groups of the model (`sparsity/hf_rules.py`),
`sparsity.group_targets: {heads: 0.5, ffn: 0.75}` on weight magnitudes (6 of 12 heads and 768
of 3072 neurons left in every layer), the masks baked in, `export.compact.compact_model`,
`torch.onnx.export` with int64 `input_ids`/`attention_mask` and dynamic batch and sequence axes,
and dynamic int8 (MatMulInteger, `export.quantize.to_int8`) of the dense and the compact graph.

Timed with `bench.sequences.benchmark_seq_lens` (files interleaved, 1 thread, token ids over the
whole vocabulary, all-ones masks), at sequence lengths 128 and 32 and batch sizes 1 and 8:
medians of the calling thread's CPU time, ratios over dense fp32 from the same run. Goals at
batch 1, sequence 128: compact >= 2.5x, compact int8 >= 6x. `--quick` (2 layers, hidden 64)
is the CI size: it checks that everything runs, not the goals.

The files are written as paiexport writes them: residual Adds before a LayerNormalization as
ONNX Sum (`export.fuse_skip_layernorm: false`, the default; `export/residual_sum.py`), because
onnxruntime fuses Add + LayerNormalization into com.microsoft.SkipLayerNormalization, whose CPU
kernel (1.32) is several times slower than the two ops it replaces, a fixed cost that would cap
every ratio. Then batch 1, sequence 128 once more with the Adds kept
(`export.fuse_skip_layernorm: true`), ratios over that run's own dense fp32: what a file exported
without the rewrite gets in a default onnxruntime session.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from functools import partial
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from paiexport.bench.clock import cpu_kind, time_interleaved
from paiexport.bench.sequences import SeqLatency, benchmark_seq_lens
from paiexport.bench.settings import BenchSettings
from paiexport.bench.stats import speedup
from paiexport.export.build import float_graph
from paiexport.export.compact import compact_model, max_abs_diff
from paiexport.export.config import ExportConfig
from paiexport.export.metadata import INPUT_VOCAB
from paiexport.export.quantize import to_int8
from paiexport.export.torch_export import save_onnx
from paiexport.export.transforms import set_metadata
from paiexport.export.variants import Int8Mode
from paiexport.sparsity.masks import attach_masks, prunable_weights, strip_masks
from paiexport.sparsity.structure import select_structured
from paiexport.sparsity.types import SparsityConfig

BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
QUICK = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
VOCAB = 30522
GROUP_TARGETS = {"heads": 0.5, "ffn": 0.75}
AXES = {"input_ids": [0, 1], "attention_mask": [0, 1]}
FILES = ("dense fp32", "dense int8", "compact", "compact int8")
CELLS = ((1, 128), (8, 128), (1, 32))  # (batch, sequence length)
GOALS = {"compact": 2.5, "compact int8": 6.0}  # at batch 1, sequence 128


def encoder(shape: dict[str, int]) -> nn.Module:
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, num_labels=2, **shape)
    return transformers.BertForSequenceClassification(config).eval()


def tokens(batch: int, length: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (batch, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def prune(model: nn.Module, example: dict[str, torch.Tensor]) -> None:
    """Half the heads and three quarters of the FFN neurons of every layer (by |w|), baked in."""
    sparsity = SparsityConfig(target=0.5, structure="channel", group_targets=GROUP_TARGETS)
    scores = {n: w.detach().abs() for n, w in prunable_weights(model).items()}
    attach_masks(model, select_structured(scores, model, sparsity, example))
    strip_masks(model)


def export(
    model: nn.Module, example: dict[str, torch.Tensor], out: Path, fuse: bool = False
) -> tuple[dict[str, Path], float]:
    """The four files (`fuse`: export.fuse_skip_layernorm), and the compact model's largest
    difference from the masked one."""
    compact = compact_model(model, example).model
    diff = max_abs_diff(model, compact, tokens(2, 48))
    vocab = {INPUT_VOCAB: f"input_ids={VOCAB},attention_mask=2"}
    config = ExportConfig(opset=18, dynamic_axes=AXES, fuse_skip_layernorm=fuse)
    files: dict[str, Path] = {}
    for label, net in (("dense", model), ("compact", compact)):
        proto = set_metadata(float_graph(net, example, config)[0], vocab)
        save_onnx(
            proto, files.setdefault(f"{label} fp32" if label == "dense" else label, out / f"{label}.onnx")
        )
        files[f"{label} int8"] = out / f"{label}.int8.onnx"
        save_onnx(set_metadata(to_int8(proto, Int8Mode.dynamic), vocab), files[f"{label} int8"])
    return {label: files[label] for label in FILES}, diff


def measure(files: dict[str, Path], iterations: int) -> SeqLatency:
    settings = BenchSettings(
        batch_sizes=sorted({b for b, _ in CELLS}),
        threads=[1],
        warmup=max(1, iterations // 10),
        iterations=iterations,
        seq_lens=sorted({n for _, n in CELLS}, reverse=True),
    )
    torch.set_num_threads(1)
    return benchmark_seq_lens(files, settings)


def at_goal_cell(files: dict[str, Path], iterations: int) -> dict[str, float]:
    """Batch 1, sequence 128 in default onnxruntime sessions: each file's thread CPU median (ms)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.log_severity_level = 3
    feed = {k: v.numpy() for k, v in tokens(*CELLS[0]).items()}
    runs = {}
    for label, path in files.items():
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        runs[label] = partial(session.run, None, feed)
    samples = time_interleaved(runs, max(1, iterations // 10), iterations, cpu_kind(1))
    return {label: samples[label].stats(1).basis_ms for label in files}


def table(timed: SeqLatency) -> dict[str, float]:
    """Prints the medians and ratios; returns each file's ratio at batch 1, sequence 128."""
    cells = [f"b{b} s{n}" for b, n in CELLS]
    print(f"{'file':<14}" + "".join(f"{c + ' ms':>14}{'ratio':>8}" for c in cells))
    at_goal: dict[str, float] = {}
    for label in FILES:
        row = f"{label:<14}"
        for batch, length in CELLS:
            stats, base = timed[length][label][batch][1], timed[length][FILES[0]][batch][1]
            ratio = speedup(base, stats)
            row += f"{stats.basis_ms:>14.2f}{ratio.value:>7.2f}×"
            if (batch, length) == CELLS[0]:
                at_goal[label] = ratio.value
        print(row)
    return at_goal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a tiny encoder, 2 iterations (CI)")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="keep the ONNX files here")
    args = parser.parse_args(argv)
    model = encoder(QUICK if args.quick else BASE)
    example = tokens(2, 16)
    prune(model, example)
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        files, diff = export(model, example, out)
        iterations = 2 if args.quick else args.iterations
        timed = measure(files, iterations)
        (out / "adds").mkdir(exist_ok=True)
        with_adds = at_goal_cell(export(model, example, out / "adds", fuse=True)[0], iterations)
    print(f"compact vs masked PyTorch, max abs diff of the logits: {diff:.2e}")
    print("thread CPU time medians (ms) at 1 thread; ratios over dense fp32 in the same run")
    at_goal = table(timed)
    ok = all(at_goal[label] >= goal for label, goal in GOALS.items())
    for label, goal in GOALS.items():
        verdict = "PASS" if at_goal[label] >= goal else "FAIL"
        print(f"{label} at batch 1, sequence 128: {at_goal[label]:.2f}x (goal >= {goal}) {verdict}")
    print(f"dense int8 alone: {at_goal['dense int8']:.2f}x")
    base = with_adds[FILES[0]]
    print("\nbatch 1, sequence 128, residual Adds kept (export.fuse_skip_layernorm: true):")
    for label, ms in with_adds.items():
        print(f"{label:<14}{ms:>14.2f}{base / ms:>7.2f}×")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
