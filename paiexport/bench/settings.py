"""What a latency measurement runs: the recipe's `bench:` section and `paiexport bench` options."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from paiexport.bench.runtimes import DEFAULT_RUNTIME, RUNTIMES
from paiexport.config import StrictModel
from paiexport.errors import shorten

MAX_BATCH = 65_536  # a larger batch of even the smallest model is an input mistake
MAX_SEQ_LEN = 1_048_576
SESSION_REPEATS = 5


class BenchSettings(StrictModel):
    """Batch sizes x thread counts, each timed `iterations` times after `warmup` untimed runs."""

    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_BATCH)]] = Field(
        default_factory=lambda: [1, 64], min_length=1, max_length=16
    )
    threads: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [1], min_length=1, max_length=16
    )
    warmup: int = Field(default=10, ge=0, le=100_000)
    iterations: int = Field(default=100, ge=1, le=1_000_000)
    runtimes: list[str] = Field(
        default_factory=lambda: [DEFAULT_RUNTIME],
        min_length=1,
        max_length=len(RUNTIMES),
        description="runtimes every file is timed and validated in, interleaved: onnxruntime, openvino",
    )

    seq_lens: list[Annotated[int, Field(ge=1, le=MAX_SEQ_LEN)]] = Field(
        default_factory=list,
        max_length=16,
        description="files with a sequence axis (token ids) are also timed at these lengths, e.g. "
        "[32, 128] (report.json latency_by_seq_len); []: the data's own length only",
    )

    @field_validator("runtimes")
    @classmethod
    def _known_runtimes(cls, runtimes: list[str]) -> list[str]:
        unknown = [r for r in runtimes if r not in RUNTIMES]
        if unknown:
            raise ValueError(f"unknown runtime {shorten(unknown[0])!r} (choose from {', '.join(RUNTIMES)})")
        if DEFAULT_RUNTIME not in runtimes:
            raise ValueError(f"must include {DEFAULT_RUNTIME}: every ratio is also taken against it")
        return list(dict.fromkeys(runtimes))

    @field_validator("seq_lens")
    @classmethod
    def _each_length_once(cls, lengths: list[int]) -> list[int]:
        return list(dict.fromkeys(lengths))


class FileBenchSettings(BenchSettings):
    """`paiexport bench` measures more than a run does: session creation, memory, any input shape."""

    session_repeats: int = Field(default=SESSION_REPEATS, ge=1)
    memory: bool = True
    shapes: dict[str, tuple[int, ...]] = Field(default_factory=dict)  # --shape NAME=DIMS
