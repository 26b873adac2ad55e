"""A sweep's summary: sweep.csv (one row per run), sweep.md (the primary metric's mean ± std
over seeds next to the dense baseline, and each line's verdict) and sweep.png (the metric vs
sparsity). Reads result rows only.

A row's `verdict` is "OK" when its run exited 0, else the run's last line ("FAILED: ...").
Classification rows hold `accuracy`; another task's rows name their primary metric in `metric`
(and hold it under that name), `metric_percent` saying whether it is a fraction shown in %.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

FIG_INCHES, DPI = (8.0, 5.0), 100  # sweep.png is 800 x 500 pixels
OK = "OK"


@dataclass(frozen=True)
class Metric:
    """The metric a sweep compares: its row key and how it is shown."""

    name: str = "accuracy"
    percent: bool = True

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> Metric:
        first = rows[0] if rows else {}
        if "metric" not in first:
            return cls()
        return cls(str(first["metric"]), str(first.get("metric_percent", "")).lower() == "true")

    def show(self, value: float, digits: int = 2) -> str:
        return f"{value:.{digits}%}" if self.percent else f"{value:.4g}"

    def difference(self, delta: float) -> str:
        """A difference of means: percentage points for a fraction, else the metric's unit."""
        return f"{delta * 100:+.1f} pts" if self.percent else f"{delta:+.4g}"


@dataclass
class Cell:
    """Accuracy over seeds of one method x sparsity (x other grid values), and its failed runs."""

    values: list[float] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run, verdict line)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); undefined for a single seed."""
        if self.n < 2:
            return None
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (self.n - 1))


def series_label(row: dict[str, Any], extra_keys: list[str]) -> str:
    extras = ", ".join(f"{k}={row[k]}" for k in extra_keys if k in row)
    return row["method"] + (f" ({extras})" if extras else "")


def aggregate(rows: list[dict[str, Any]], extra_keys: list[str]) -> dict[str, dict[float, Cell]]:
    """label (method + other grid values) -> sparsity target -> the primary metric over seeds."""
    cells: dict[str, dict[float, Cell]] = {}
    metric = Metric.of(rows)
    for row in rows:
        by_target = cells.setdefault(series_label(row, extra_keys), {})
        cell = by_target.setdefault(float(row["sparsity_target"]), Cell())
        cell.values.append(float(row[metric.name]))
        if row.get("verdict", OK) != OK:
            cell.failed.append((str(row["run"]), str(row["verdict"])))
    return cells


def failed_runs(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(run, verdict line) of every run that did not exit 0, in sweep order."""
    return [(str(r["run"]), str(r["verdict"])) for r in rows if r.get("verdict", OK) != OK]


def _verdict(by_target: dict[float, Cell]) -> str:
    runs = sum(c.n for c in by_target.values())
    failed = sum(len(c.failed) for c in by_target.values())
    return "ok" if not failed else f"{failed} of {runs} FAILED"


def _fmt(cell: Cell, metric: Metric) -> str:
    std = "" if cell.std is None else f" ± {metric.show(cell.std)}"
    return f"{metric.show(cell.mean)}{std} (n={cell.n})"


def _dense_for(label: str, cells: dict[str, dict[float, Cell]]) -> Cell | None:
    """The dense baseline run with the same other grid values as `label`."""
    extras = label.partition(" ")[2]
    dense = cells.get("dense" + (f" {extras}" if extras else ""), {})
    return dense.get(0.0)


def markdown_table(cells: dict[str, dict[float, Cell]], title: str, metric: Metric = Metric()) -> str:
    targets = sorted({t for by_t in cells.values() for t in by_t if t > 0})
    what = "Test accuracy" if metric.name == "accuracy" else f"Test {metric.name}"
    unit = "in percentage points" if metric.percent else f"in {metric.name}"
    lines = [
        f"# {title}",
        "",
        f"{what} of the PyTorch model, mean ± sample std over seeds (n runs); in brackets the",
        f"difference of the means to the dense baseline with the same seeds, {unit}.",
        "",
        "| method | dense | " + "".join(f"{t:.0%} sparse | " for t in targets) + "verdict |",
        "|---|---|" + "---|" * len(targets) + "---|",
    ]
    for label, by_target in sorted(cells.items(), key=lambda kv: (not kv[0].startswith("dense"), kv[0])):
        dense = _dense_for(label, cells)
        row = [label, _fmt(by_target[0.0], metric) if 0.0 in by_target else "-"]
        for t in targets:
            cell = by_target.get(t)
            delta = "" if cell is None or dense is None else f" ({metric.difference(cell.mean - dense.mean)})"
            row.append("-" if cell is None else _fmt(cell, metric) + delta)
        lines.append("| " + " | ".join([*row, _verdict(by_target)]) + " |")
    failed = [f for by_target in cells.values() for c in by_target.values() for f in c.failed]
    if failed:
        lines += [
            "",
            "Failed runs (broken files, failed gates or no deployable file; see each report.html):",
            "",
        ]
        lines += [f"- `{run}`: {line}" for run, line in sorted(failed)]
    return "\n".join(lines) + "\n"


def sweep_figure(cells: dict[str, dict[float, Cell]], title: str, metric: Metric = Metric()) -> Figure:
    """The metric vs sparsity, one line per method with std error bars; dense as a band."""
    fig = Figure(figsize=FIG_INCHES, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for label, by_target in sorted(cells.items()):
        points = sorted(by_target.items())
        if label.startswith("dense"):
            cell = by_target[0.0]
            shown = metric.show(cell.mean, 1)
            ax.axhline(cell.mean, color="k", ls="--", lw=1, label=f"{label} ({shown}; band: ± std)")
            if cell.std is not None:
                ax.axhspan(cell.mean - cell.std, cell.mean + cell.std, color="k", alpha=0.08)
            continue
        x, y = [t for t, _ in points], [c.mean for _, c in points]
        ax.errorbar(x, y, yerr=[c.std or 0.0 for _, c in points], marker="o", capsize=4, label=label)
    ax.set_xlabel("sparsity target (fraction of prunable weights removed)")
    ax.set_ylabel(f"test {metric.name}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def write_outputs(rows: list[dict[str, Any]], extra_keys: list[str], out_dir: Path, title: str) -> None:
    """sweep.csv (one row per run), sweep.md (mean ± std table), sweep.png (the metric vs sparsity)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with (out_dir / "sweep.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    cells, metric = aggregate(rows, extra_keys), Metric.of(rows)
    (out_dir / "sweep.md").write_text(markdown_table(cells, title, metric))
    sweep_figure(cells, title, metric).savefig(out_dir / "sweep.png", dpi=DPI)
