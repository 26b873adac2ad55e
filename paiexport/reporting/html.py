"""report.html: one self-contained page per run (figures embedded as base64 PNG), plus the PNGs.

Reads only the RunReport and metrics.jsonl, so it works for any set of variants.
Figures use matplotlib's object API (no pyplot state), safe in worker processes.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from paiexport.paths import RunPaths
from paiexport.reporting.details import method_details
from paiexport.reporting.report import (
    metric_short,
    metric_text,
    metric_value,
    percent,
    summary_rows,
    validation_rows,
    verdict_lines,
)
from paiexport.reporting.runtimes import runtime_note, runtime_rows
from paiexport.reporting.schema import RunReport
from paiexport.reporting.speed import busy_line, latency_note
from paiexport.training.metrics_log import EpochRecord, read_epoch_records

FIG_INCHES = (9.0, 4.0)
DPI = 100  # every PNG is 900 x 400 pixels
FIG_PIXELS = (int(FIG_INCHES[0] * DPI), int(FIG_INCHES[1] * DPI))
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def _figure() -> Figure:
    return Figure(figsize=FIG_INCHES, dpi=DPI, layout="constrained")


def _empty(fig: Figure, text: str) -> Figure:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#555")
    ax.set_axis_off()
    return fig


METRIC_TITLES = {"acc": "accuracy"}


def training_figure(metrics: list[EpochRecord]) -> Figure:
    """Loss and accuracy per epoch; a method that trains more than once gets dashed separators."""
    fig = _figure()
    if not metrics:
        return _empty(fig, "no training epochs (weights not trained)")
    x = list(range(1, len(metrics) + 1))
    restarts = [i + 0.5 for i in range(1, len(metrics)) if metrics[i].epoch <= metrics[i - 1].epoch]
    metric = metrics[-1].metric
    for ax, what in zip(fig.subplots(1, 2), ("loss", "metric"), strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(x, [getattr(m, f"{split}_{what}") for m in metrics], style, marker="o", ms=3, label=split)
        for r in restarts:
            ax.axvline(r, color="#999", ls=":", lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch" + (" (all training phases)" if restarts else ""))
        ax.set_title("loss" if what == "loss" else METRIC_TITLES.get(metric, metric))
        ax.grid(alpha=0.3)
        # A fixed corner: loc="best" is slow (and warns on the terminal) on a busy CPU.
        ax.legend(loc="upper right" if what == "loss" else "lower right")
    return fig


def sparsity_figure(report: RunReport) -> Figure:
    """Per-layer sparsity: the allocation's target next to what the model reached."""
    fig = _figure()
    s = report.sparsity
    layers = s.per_layer if s else {}
    if not layers:
        return _empty(fig, "no prunable layers")
    ax = fig.add_subplot()
    names = list(layers)
    pos = range(len(names))
    targets = [layers[n].target if layers[n].target is not None else 0.0 for n in names]
    ax.bar([p - 0.2 for p in pos], targets, 0.4, label="target", color=COLORS[0], alpha=0.6)
    reached = [layers[n].reached for n in names]
    bars = ax.bar([p + 0.2 for p in pos], reached, 0.4, label="reached", color=COLORS[1])
    ax.bar_label(bars, [f"{r:.1%}" for r in reached], fontsize=8, padding=2)
    ax.set_xticks(
        list(pos), names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center"
    )
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("sparsity (fraction removed)")
    ax.set_title(
        f"per-layer sparsity, {s.distribution or ''}: overall target {s.target:.1%}, reached {s.reached:.1%}"
    )
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _bars_with_ratios(
    ax: Any, labels: list[str], values: list[float], ratios: list[float | None], unit: str
) -> None:
    bars = ax.bar(labels, values, color=[COLORS[i % len(COLORS)] for i in range(len(labels))])
    for bar, value, ratio in zip(bars, values, ratios, strict=True):
        text = f"{value:.3g} {unit}" + ("" if ratio is None else f"\n{ratio:.2f}×")
        top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
        ax.annotate(
            text, top, ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points"
        )
    ax.set_ylim(0, max(values, default=1) * 1.35 or 1)
    ax.grid(axis="y", alpha=0.3)


def latency_figure(report: RunReport) -> Figure:
    """Median latency per variant, one panel per batch size x threads; labels: speedup over dense."""
    fig = _figure()
    latency = report.latency_ms
    settings = sorted(
        {(int(b), int(t)) for by_b in latency.values() for b, by_t in by_b.items() for t in by_t}
    )
    if not settings:
        return _empty(fig, "not benchmarked")
    speedup = report.speedup_vs_dense
    for ax, (b, t) in zip(fig.subplots(1, len(settings), squeeze=False)[0], settings, strict=True):
        variants = [v for v in latency if str(t) in latency[v].get(str(b), {})]
        values = [latency[v][str(b)][str(t)] for v in variants]
        ratios = [speedup.get(v, {}).get(str(b), {}).get(str(t)) for v in variants]
        _bars_with_ratios(ax, variants, values, ratios, "ms")
        ax.set_title(f"batch {b}, {t} thread{'s' if t > 1 else ''}", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30 if len(variants) > 3 else 0)
    fig.axes[0].set_ylabel("median latency (ms)")
    fig.suptitle("onnxruntime CPU median latency per variant (lower is better); labels: speedup vs dense")
    return fig


def size_figure(report: RunReport) -> Figure:
    """File size raw and gzip per variant; labels: ratio to the dense file."""
    fig = _figure()
    sizes = report.size_bytes
    if not sizes:
        return _empty(fig, "no files")
    ratio = report.size_ratio_vs_dense
    variants = list(sizes)
    for ax, kind in zip(fig.subplots(1, 2), ("raw", "gzip"), strict=True):
        values = [getattr(sizes[v], kind) / 1024 for v in variants]
        _bars_with_ratios(ax, variants, values, [ratio.get(v, {}).get(kind) for v in variants], "KiB")
        ax.set_title(f"{kind} size (label: ratio to dense)", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30 if len(variants) > 3 else 0)
    fig.axes[0].set_ylabel("KiB")
    return fig


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)  # no bbox_inches: every PNG has FIG_PIXELS
    return buffer.getvalue()


def figures(report: RunReport, metrics: list[EpochRecord]) -> dict[str, bytes]:
    """PNG bytes by name, in page order."""
    return {
        "training": png_bytes(training_figure(metrics)),
        "sparsity": png_bytes(sparsity_figure(report)),
        "latency": png_bytes(latency_figure(report)),
        "size": png_bytes(size_figure(report)),
    }


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; } td:not(:first-child) { text-align: right; }
img { max-width: 100%; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
.meta { color: #555; } .busy { color: #b00; }
"""

CAPTIONS = {
    "training": "Training curves",
    "sparsity": "Per-layer sparsity (target vs reached)",
    "latency": "Latency per variant",
    "size": "File size per variant",
}


def environment(report: RunReport) -> str:
    """Where, when and with what the latencies were measured (shown beside them)."""
    m, v = report.machine.model_dump() if report.machine else {}, report.versions
    threads = (report.recipe or {}).get("bench", {}).get("threads", [])
    packages = ", ".join(
        f"{k} {v[k]}" for k in ("paiexport", "onnxruntime", "onnx", "torch", "python") if k in v
    )
    parts = [
        f"CPU {m.get('cpu', '-')} ({m.get('logical_cpus', '-')} logical cores)",
        f"onnxruntime threads {', '.join(map(str, threads)) or '-'}",
        f"measured {m.get('date', '-')}",
        packages,
        v.get("platform", ""),
    ]
    return f"<p class='meta env'>{html.escape(' · '.join(p for p in parts if p))}</p>"


def details(report: RunReport) -> str:
    """The method's own report sections (mask updates, levels, phases, ...)."""
    out = []
    for section in method_details(report):
        items = "".join(f"<li>{html.escape(line)}</li>" for line in section.lines)
        out.append(f"<h2>{html.escape(section.title)}</h2>" + (f"<ul>{items}</ul>" if items else ""))
        for caption, headers, rows in section.tables:
            out.append((f"<p><b>{html.escape(caption)}</b></p>" if caption else "") + _table(headers, rows))
    return "".join(out)


def runtimes(report: RunReport) -> str:
    """Every file in each runtime of `bench.runtimes` ("" when onnxruntime ran alone)."""
    if not report.runtimes:
        return ""
    rows = runtime_rows(report, lambda v: metric_value(report, v), f"test {metric_short(report)}")
    note = html.escape(runtime_note(report.runtimes))
    return f"<h2>Runtimes</h2>{_table(*rows)}<p class='meta'>{note}</p>"


def _busy(report: RunReport) -> str:
    """The busy-machine warning as a paragraph ("" when the run was not busy)."""
    line = busy_line(report.busy, report.wall_cpu_ratio)
    return f"<p class='busy'><b>{html.escape(line)}</b></p>" if line else ""


def render_html(report: RunReport, pngs: dict[str, bytes]) -> str:
    name = html.escape(str((report.recipe or {}).get("name", "run")))
    s, training = report.sparsity, report.training
    facts = [
        f"method <b>{html.escape(report.method or '-')}</b>",
        f"sparsity target {percent(s and s.target)}, reached {percent(s and s.reached)}",
        f"PyTorch test {html.escape(metric_text(report))}",
        f"{training.epochs if training else '-'} epochs in {training.seconds if training else 0:.1f} s",
    ]
    env = environment(report)
    images = "".join(
        f"<h2>{CAPTIONS.get(key, key)}</h2><img alt='{key}' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode()}'>" + (env if key == "latency" else "")
        for key, png in pngs.items()
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    recipe = html.escape(yaml.safe_dump(report.recipe or {}, sort_keys=False))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{name} · paiexport report</title>
<style>{CSS}</style></head><body>
<h1>{name}</h1><p class="meta">{" · ".join(facts)}</p>
<h2>Summary</h2>{_table(*summary_rows(report, files=True))}
{"".join(f"<p class='meta'>{html.escape(line)}</p>" for line in verdict_lines(report))}
<p class="meta">{html.escape(latency_note(bool(report.speedup_vs_dense_cpu)))}</p>
{_busy(report)}{env}
<h2>Validation per file</h2>{_table(*validation_rows(report))}
<p class="meta">Parity: max abs difference of the file's outputs vs PyTorch on the test split.</p>
{runtimes(report)}{images}
{details(report)}
<h2>Notes</h2><ul>{notes}</ul>
<h2>Recipe</h2><pre>{recipe}</pre>
</body></html>
"""


def write_html_report(paths: RunPaths, report: RunReport) -> Path:
    """Write plots/<figure>.png and report.html (the same PNGs, embedded) into the run folder."""
    pngs = figures(report, read_epoch_records(paths.metrics))
    paths.plots.mkdir(exist_ok=True)
    for key, png in pngs.items():
        paths.plot(key).write_bytes(png)
    paths.report_html.write_text(render_html(report, pngs))
    return paths.report_html
