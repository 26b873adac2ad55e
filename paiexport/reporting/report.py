"""report.json (for machines), report.md and the terminal table (for people)."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.table import Table

from paiexport.bench.latency import LatencyStats
from paiexport.reporting.details import method_details
from paiexport.reporting.runtimes import runtime_note, runtime_rows
from paiexport.reporting.schema import FileCheck, RunReport, Sparsity, needed
from paiexport.reporting.speed import busy_line, latency_note, seq_latency_table, speed_sections
from paiexport.variant import Variant

SPARSE_STORAGE_NOTE = (
    "model.sparse.onnx stores weights as ONNX sparse initializers: the file is smaller, but "
    "onnxruntime expands them to dense tensors when it loads the model, so it runs no faster "
    "than model.onnx and saves no memory (`paiexport bench` measures the session's peak). "
    "Speed needs a physically smaller graph (compact) or int8."
)
UNTRAINED_WEIGHTS_NOTE = (
    "The weights were not trained: they keep their random initialization and only the mask "
    "was selected (by training a score per weight); the exported model is those random "
    "weights times the selected mask."
)


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("paiexport", "torch", "onnx", "onnxruntime", "onnxscript", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo; elsewhere whatever platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    """Where and when the latencies were measured (report.json `machine`)."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def latency_sections(
    stats: dict[str, dict[int, dict[int, LatencyStats]]], baseline: str = Variant.dense
) -> dict[str, Any]:
    """`latency_ms` (wall medians), `latency` (full stats), the speedup tables (same-run ratios:
    `speedup_vs_dense` on thread CPU time at 1 thread, wall time at more) and `busy`."""
    medians = {
        v: {str(b): {str(t): s.median_ms for t, s in by_t.items()} for b, by_t in by_b.items()}
        for v, by_b in stats.items()
    }
    full = {
        v: {str(b): {str(t): s.to_dict() for t, s in by_t.items()} for b, by_t in by_b.items()}
        for v, by_b in stats.items()
    }
    return {"latency_ms": medians, "latency": full, **speed_sections(stats, baseline)}


def size_ratios(
    sizes: dict[str, dict[str, int]], baseline: str = Variant.dense
) -> dict[str, dict[str, float]]:
    base = sizes[baseline]
    return {v: {k: s[k] / base[k] for k in ("raw", "gzip")} for v, s in sizes.items()}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")


def percent(x: Any) -> str:
    """0.9512 -> "95.12%"; a missing value -> "-"."""
    return f"{x:.2%}" if isinstance(x, int | float) else "-"


def verdict_cell(check: FileCheck | None) -> str:
    """'pass', 'BROKEN: parity' (an error) or '−1.2 pt > 1.0: not deployable' (a trade-off)."""
    if check is None:
        return "-"
    if not check.passed:
        return f"BROKEN: {', '.join(check.broken_checks) or 'failed'}"
    return "pass" if check.deployable else check.reason


def metric_name(report: RunReport) -> str:
    """The primary metric's name ("accuracy", "r2", "perplexity")."""
    return report.primary[0]


def metric_short(report: RunReport) -> str:
    return "acc" if metric_name(report) == "accuracy" else metric_name(report)


def metric_value(report: RunReport, value: float | None) -> str:
    """A primary metric's value: accuracy as a percentage, other metrics as numbers."""
    if value is None:
        return "-"
    return percent(value) if metric_name(report) == "accuracy" else f"{value:.4g}"


def metric_text(report: RunReport) -> str:
    """ "acc 91.20%" or "r2 0.4312": the PyTorch model's primary metric in a title."""
    return f"{metric_short(report)} {metric_value(report, report.torch_metric)}"


def summary_rows(report: RunReport, *, files: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and one row per variant (accuracy, size, latency with ratios, verdict).

    Shared by the terminal table, report.md and report.html (which adds the `file` column);
    keys a report lacks show as "-".
    """
    latency, speedup = report.latency_ms, report.speedup_vs_dense
    onnx_acc = report.onnx_metric() if (report.accuracy or report.metrics) else {}
    settings = sorted(
        {(b, t) for by_b in latency.values() for b, by_t in by_b.items() for t in by_t},
        key=lambda s: (int(s[0]), int(s[1])),
    )
    headers = [
        "variant",
        *(["file"] if files else []),
        f"test {metric_short(report)}",
        "size (vs dense)",
        "gzip",
        *(f"b{b} t{t}" for b, t in settings),
        "verdict",
    ]
    rows = []
    for v, size in report.size_bytes.items():
        ratio = report.size_ratio_vs_dense.get(v, {}).get("raw", float("nan"))
        row = [
            variant_label(report, v),
            *([report.files.get(v, "-")] if files else []),
            metric_value(report, onnx_acc.get(v)),
            f"{size.raw / 1024:.1f} KiB ({ratio:.3g}×)",
            f"{size.gzip / 1024:.1f} KiB",
        ]
        for b, t in settings:
            ms = latency.get(v, {}).get(b, {}).get(t)
            r = speedup.get(v, {}).get(b, {}).get(t)
            row.append("-" if ms is None else f"{ms:.3f} ms" + ("" if r is None else f" ({r:.2f}×)"))
        row.append(verdict_cell(report.validation.get(v)))
        rows.append(row)
    return headers, rows


def variant_label(report: RunReport, variant: str) -> str:
    """`deploy` names the variant it copies: "deploy (= compact.int8)"."""
    source = report.deploy.variant if report.deploy else None
    return f"{variant} (= {source})" if variant == "deploy" and source else variant


def validation_rows(report: RunReport) -> tuple[list[str], list[list[str]]]:
    """One row per file: the checks of `validation`, parity as the max abs diff vs PyTorch."""
    headers = [
        "variant",
        "file",
        "checker",
        "loads",
        "max abs diff vs PyTorch",
        "parity",
        f"test {metric_short(report)}",
        "verdict",
    ]
    mark = {True: "ok", False: "BROKEN"}
    rows = []
    for v, c in report.validation.items():
        parity = mark[c.parity] if c.parity_required else "not required (int8)"
        label, file = variant_label(report, v), report.files.get(v, "-")
        diff = "-" if c.max_abs_diff is None else f"{c.max_abs_diff:.3g}"
        checks = [mark[c.checker], mark[c.loads], diff, parity]
        value = c.metric if c.metric is not None else c.accuracy
        rows.append([label, file, *checks, metric_value(report, value), verdict_cell(c)])
    return headers, rows


def summary_table(report: RunReport) -> Table:
    s, recipe = needed(report.sparsity, "sparsity"), needed(report.recipe, "recipe")
    table = Table(
        title=f"{recipe['name']}: {report.method} · sparsity "
        f"{s.reached:.2%} (target {s.target:.2%}) · torch {metric_text(report)}",
        caption=busy_line(report.busy, report.wall_cpu_ratio) or None,
        caption_style="bold",
    )
    headers, rows = summary_rows(report)
    for header in headers:
        table.add_column(
            header, justify="left" if header == "variant" else "right", no_wrap=header == "variant"
        )
    for row in rows:
        table.add_row(*row)
    return table


def verdict_lines(report: RunReport) -> list[str]:
    """The recipe's gate results and the run's verdict (broken files, gates, deploy choice)."""
    gates = [r.line for r in report.gates.results] if report.gates else []
    verdict = report.verdict
    return [*gates, *([f"verdict: {verdict.line}"] if verdict else [])]


def int8_lines(report: RunReport) -> list[str]:
    """The int8 files' mode and format, and why (`export.int8_used`); none without int8 files."""
    used = report.export.int8_used if report.export is not None else None
    sums = report.export.residual_sums if report.export is not None else 0
    lines = []
    if used is not None:
        written = f", {used.format}" if used.format else ""
        lines.append(f"- int8 files: {used.mode}{written}; {used.reason}")
    if sums:
        lines.append(
            f"- {sums} residual Adds before a LayerNormalization written as Sum "
            "(onnxruntime's fused SkipLayerNormalization CPU kernel is slower; export.fuse_skip_layernorm)"
        )
    return lines


def markdown(report: RunReport) -> str:
    s = needed(report.sparsity, "sparsity")
    recipe, training = needed(report.recipe, "recipe"), needed(report.training, "training")
    headers, rows = summary_rows(report)
    busy = busy_line(report.busy, report.wall_cpu_ratio)
    lines = [
        f"# {recipe['name']}",
        "",
        f"- method: `{report.method}`, distribution `{recipe['sparsity']['distribution']}`",
        *([] if report.weights_trained else ["- weights: **not trained** (see Notes)"]),
        f"- sparsity of prunable weights: target {s.target:.2%}, reached {s.reached:.2%}",
        f"- test {metric_name(report)}: PyTorch {metric_value(report, report.torch_metric)}; "
        + ", ".join(f"{v} {metric_value(report, a)}" for v, a in report.onnx_metric().items()),
        f"- training: {training.epochs} epochs in {training.seconds:.1f} s "
        f"(exported checkpoint: epoch {training.exported_epoch})",
        *int8_lines(report),
        "",
        latency_note(bool(report.speedup_vs_dense_cpu)),
        *(["", f"**{busy}**"] if busy else []),
        "",
        *_md_table(headers, rows),
        "",
        *(f"- {line}" for line in verdict_lines(report)),
        "",
        *_per_layer_lines(s),
    ]
    lines += ["", "## Validation per file", "", *_md_table(*validation_rows(report))]
    if report.latency_by_seq_len:
        by_seq = seq_latency_table(report.latency_by_seq_len)
        lines += ["", "## Latency per sequence length", "", *_md_table(*by_seq)]
    if report.runtimes:
        rows = runtime_rows(report, lambda v: metric_value(report, v), f"test {metric_short(report)}")
        lines += ["", "## Runtimes", "", runtime_note(report.runtimes), "", *_md_table(*rows)]
    for section in method_details(report):
        lines += [
            "",
            f"## {section.title}",
            *([""] if section.lines else []),
            *(f"- {line}" for line in section.lines),
        ]
        for caption, headers, rows in section.tables:
            lines += ["", *([f"**{caption}**", ""] if caption else []), *_md_table(headers, rows)]
    lines += ["", "## Notes", "", *(f"- {note}" for note in report.notes), ""]
    return "\n".join(lines)


def _per_layer_lines(s: Sparsity) -> list[str]:
    lines = ["## Per-layer sparsity", "", "| layer | weights | target | reached |", "|---|---|---|---|"]
    for name, layer in s.per_layer.items():
        target = "-" if layer.target is None else f"{layer.target:.2%}"
        lines.append(f"| {name} | {layer.numel} | {target} | {layer.reached:.2%} |")
    return lines


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
