"""Latency at several sequence lengths (`bench.seq_lens`): files whose inputs have a sequence axis.

A transformer's cost grows with the sequence, so one length says little: each length in
`settings.seq_lens` is timed like the run's own bench (every file interleaved, onnxruntime, every
batch size and thread count), with token ids valid for the file (`paiexport.input_vocab`) and
all-ones masks (`verify.inputs.random_feeds`). Files without a sequence axis (one float input,
fixed shapes) give nothing: their one shape is the run's `latency`.
"""

from __future__ import annotations

from pathlib import Path

from paiexport.bench.latency import benchmark_files
from paiexport.bench.runtime_latency import Latency
from paiexport.bench.settings import BenchSettings
from paiexport.errors import UserError
from paiexport.verify.inputs import file_inputs, sequence_shapes

SeqLatency = dict[int, dict[str, Latency]]  # sequence length -> file -> batch -> threads -> stats


def with_sequence_shapes(
    files: dict[str, Path], shapes: dict[str, tuple[int, ...]], length: int, option: str
) -> dict[str, tuple[int, ...]]:
    """`shapes` plus (1, `length`, ...) for every input with a sequence axis that `shapes` does not
    give (the shape the files' main latency is measured at); a `UserError` naming `option` when
    no input of `files` has a sequence axis (checked before anything is timed)."""
    specs = [spec for path in files.values() for spec in file_inputs(path)]
    filled = sequence_shapes(specs, {}, length)
    if filled is None:
        raise UserError(f"{option}: no input of these files has a sequence axis (a dynamic dimension 1)")
    return {**filled, **shapes}


def benchmark_seq_lens(
    files: dict[str, Path], settings: BenchSettings, shapes: dict[str, tuple[int, ...]] | None = None
) -> SeqLatency:
    """Per length of `settings.seq_lens`, every file's latency with its sequence axes at that
    length (other dimensions as `shapes` give them); {} when no file has a sequence axis."""
    if not settings.seq_lens or not files:
        return {}
    specs = [spec for path in files.values() for spec in file_inputs(path)]
    out: SeqLatency = {}
    for length in settings.seq_lens:
        at_length = sequence_shapes(specs, shapes or {}, length)
        if at_length is None:
            return {}
        out[length] = benchmark_files(files, settings, at_length)
    return out
