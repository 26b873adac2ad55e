"""report.json, typed: `RunReport` is what `run` writes and what `check`, `report`, `sweep` read.

`schema_version` 2 is the first typed report. It adds `schema_version`, `latency_rows` (the
`latency` tables as one row per variant, batch and threads) and `method_details` (the method's
own keys in one place) and keeps every key of version 1, the method's keys included. Version 3
adds `task`, `metrics` and each file's `validation.<variant>.metrics` (every task), the int8
choice (`export.int8_used`) and CPU-time figures (`latency` CPU keys, `speedup_vs_dense_wall`,
`speedup_vs_dense_cpu`, `busy`, `wall_cpu_ratio`: reporting/speed.py), and `runtimes` with
`validation.<variant>.runtimes` (reporting/runtimes.py: `bench.runtimes` besides onnxruntime),
and `latency_by_seq_len` (only with `bench.seq_lens`). A report.json without `schema_version`
is version 1: it is read as is (every section it lacks is None), so runs written before the
typed report still gate and render.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paiexport.errors import UserError
from paiexport.reporting.quality import Accuracy, FileCheck, Metrics, Section, TaskInfo
from paiexport.reporting.runtimes import RuntimeFigures
from paiexport.reporting.speed import LatencyRow, Nested, SeqLatencyRow, Stats, WallCpuRatio, latency_rows
from paiexport.tasks.base import DropRule

SCHEMA_VERSION = 3
# Method.fit details that version 1 wrote as top-level keys (docs/outputs-and-verdicts.md documents them).
METHOD_KEYS = ("mask_updates", "levels", "phases", "sparse_selection")
S = TypeVar("S")


class LayerSparsity(Section):
    numel: int = 0
    target: float | None = None
    reached: float | None = None
    onnx: dict[str, float | None] = Field(default_factory=dict)


class Sparsity(Section):
    target: float | None = None
    reached: float
    distribution: str | None = None
    per_layer: dict[str, LayerSparsity] = Field(default_factory=dict)


class FileSize(Section):
    raw: int
    gzip: int


class Training(Section):
    epochs: int
    seconds: float
    best_epoch: int | None = None
    exported_epoch: int | None = None
    threads: int | None = None
    final: dict[str, Any] | None = None


class Compact(Section):
    params_before: int
    params_after: int
    torch_max_abs_diff: float
    space_to_depth_convs: int = 0  # convolutions run on 2x2 pixel blocks (export.space_to_depth)


class Int8Used(Section):
    """The int8 files' quantization: `export.int8` resolved (`auto` -> static or dynamic) and why."""

    mode: str
    format: str | None = None  # static only: qdq or qoperator
    reason: str = ""


class Export(Section):
    """What the export chose where the recipe left it a choice."""

    int8_used: Int8Used | None = None
    residual_sums: int = 0  # Adds before a LayerNormalization written as Sum (export.fuse_skip_layernorm)


class DeployCandidate(Section):
    geomean_latency_ms: float
    accuracy: float | None = None  # classification
    accuracy_drop_points: float | None = None
    metric: float | None = None  # another task's primary metric and its drop
    metric_drop: float | None = None
    eligible: bool


class Deploy(Section):
    variant: str | None
    runtime: str | None = None  # export.deploy_runtime; None: onnxruntime
    max_accuracy_drop: float | None = None
    max_metric_drop: float | None = None
    criterion: str = ""
    candidates: dict[str, DeployCandidate] = Field(default_factory=dict)


class GateRow(Section):
    gate: str
    measured: float
    limit: float
    passed: bool
    where: str
    unit: str
    line: str
    at_most: bool | None = None  # the limit is a maximum (min_metric of a lower-is-better metric)


class Gates(Section):
    passed: bool
    results: list[GateRow] = Field(default_factory=list)
    error: str | None = None


class Verdict(Section):
    exit_code: int
    line: str


class Collapse(Section):
    layers: list[str] = Field(default_factory=list)
    output_channels: dict[str, list[int]] = Field(default_factory=dict)


class Machine(Section):
    cpu: str
    logical_cpus: int | None = None
    date: str = ""


class RunReport(BaseModel):
    """Every key of report.json; a section an old or partial report lacks is None."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    paiexport_version: str | None = None
    recipe: dict[str, Any] | None = None
    recipe_hash: str | None = None
    method: str | None = None
    weights_trained: bool = True
    task: TaskInfo | None = None
    metrics: Metrics | None = None
    accuracy: Accuracy | None = None  # classification
    sparsity: Sparsity | None = None
    layer_collapse: Collapse | None = None
    validation: dict[str, FileCheck] = Field(default_factory=dict)
    latency_ms: Nested = Field(default_factory=dict)
    latency: dict[str, dict[str, dict[str, Stats]]] = Field(default_factory=dict)
    speedup_vs_dense: Nested = {}  # thread CPU time at 1 thread, wall time at more (reporting/speed.py)
    speedup_vs_dense_wall: Nested = Field(default_factory=dict)
    speedup_vs_dense_cpu: Nested = Field(default_factory=dict)
    busy: bool | None = None  # wall and thread CPU medians disagreed by more than 15%
    wall_cpu_ratio: WallCpuRatio | None = None
    latency_by_seq_len: list[SeqLatencyRow] | None = None  # bench.seq_lens (None: not measured)
    runtimes: dict[str, RuntimeFigures] | None = None  # None: onnxruntime alone
    size_bytes: dict[str, FileSize] = Field(default_factory=dict)
    size_ratio_vs_dense: dict[str, dict[str, float]] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    training: Training | None = None
    compact: Compact | None = None
    export: Export | None = None  # None: no int8 file, or a report written before `export.int8: auto`
    train_compact: dict[str, Any] | None = None  # train.compact: what the small model trained
    deploy: Deploy | None = None
    notes: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    machine: Machine | None = None
    method_details: dict[str, Any] = Field(default_factory=dict)
    world_size: int = 1  # torchrun processes that trained the model
    gates: Gates | None = None
    verdict: Verdict | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_json(cls, data: Any) -> Any:
        """Version 1 (no `schema_version`) and the keys written twice or derived on write."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if k != "latency_rows"}  # derived from `latency`
        top = {k: data.pop(k) for k in METHOD_KEYS if k in data}
        data["method_details"] = {**(data.get("method_details") or {}), **top}  # the public keys win
        return data

    @property
    def latency_rows(self) -> list[LatencyRow]:
        """`latency` and the speedup tables as one row per (variant, batch, threads)."""
        tables = self.speedup_vs_dense, self.speedup_vs_dense_wall, self.speedup_vs_dense_cpu
        return latency_rows(self.latency, *tables)

    @property
    def ok(self) -> bool:
        """True when the run's verdict exit code is 0 (no broken file, gates passed, a deploy file
        where `auto` asked for one); False when it failed or the report records no verdict."""
        return self.verdict is not None and self.verdict.exit_code == 0

    @property
    def primary(self) -> tuple[str, bool]:
        """(name, higher is better) of the primary metric (accuracy for reports without `task`)."""
        return (self.task.primary, self.task.higher_is_better) if self.task else ("accuracy", True)

    @property
    def drop_rule(self) -> DropRule:
        """How the primary metric's drop is measured (classification: points of accuracy)."""
        if self.task is None:
            return DropRule(True, 100.0, False)
        return DropRule(self.task.higher_is_better, self.task.drop_scale, self.task.relative_drop)

    @property
    def torch_metric(self) -> float:
        """The PyTorch model's primary metric."""
        if self.task is not None and self.metrics is not None:
            return self.metrics.torch[self.task.primary]
        return needed(self.accuracy, "accuracy").torch

    def onnx_metric(self) -> dict[str, float]:
        """Each file's primary metric."""
        if self.task is not None and self.metrics is not None:
            name = self.task.primary
            return {v: m[name] for v, m in self.metrics.onnx.items() if name in m}
        return dict(needed(self.accuracy, "accuracy").onnx)

    def to_json_dict(self) -> dict[str, Any]:
        """report.json: version 1's keys in their order, `latency_rows` after the latency
        tables and the method's details both under `method_details` and at the top level."""
        data = self.model_dump()
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "latency_by_seq_len" and value is None:
                continue  # measured only with bench.seq_lens: other reports keep their keys
            if key == "gates":
                out.update(self.method_details)  # where version 1 wrote them
            out[key] = value
            if key == "speedup_vs_dense":
                out["latency_rows"] = [r.model_dump() for r in self.latency_rows]
        return out

    def write(self, path: Path) -> None:
        """Strict JSON: a value that is not finite (a custom task without a baseline: ±inf) is null."""
        path.write_text(
            json.dumps(_finite(self.to_json_dict()), indent=2, sort_keys=False, allow_nan=False) + "\n"
        )

    @classmethod
    def from_dict(cls, raw: Any, source: str = "report") -> RunReport:
        if not isinstance(raw, dict):
            raise UserError(f"{source}: a report is a JSON object")
        version = raw.get("schema_version")
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise UserError(
                f"{source}: schema_version {version} is newer than this paiexport reads "
                f"({SCHEMA_VERSION}); upgrade paiexport"
            )
        raw = {"schema_version": 1, **raw}  # a report.json without it is version 1
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise UserError(f"{source}: {where}: {err['msg']}") from None

    @classmethod
    def read(cls, path: Path) -> RunReport:
        """A run folder (its report.json) or a report.json file."""
        file = path / "report.json" if path.is_dir() else path
        if not file.is_file():
            raise UserError(f"report not found: {file}")
        try:
            raw = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            raise UserError(f"{file}: not a readable JSON report") from None
        return cls.from_dict(raw, str(file))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def needed(section: S | None, name: str) -> S:
    """`section` (a `RunReport` attribute) for a reader that cannot do without it. A report of a
    run that stopped early, or an older report.json, may lack it (None, or an empty table):
    a `UserError` "report has no NAME"."""
    if section is None or section == {}:
        raise UserError(f"report has no {name}")
    return section
