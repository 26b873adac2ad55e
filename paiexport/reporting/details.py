"""The method's own report.json keys (`method_details`) as sections of report.md and report.html."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paiexport.reporting.schema import RunReport

# method_details keys -> section title; every method's details render in report.md/html.
METHOD_SECTIONS = {
    "mask_updates": "mask updates",
    "levels": "lottery-ticket levels",
    "phases": "training phases",
    "sparse_selection": "sparse selection",
}
MAX_DETAIL_ROWS = 20  # long update logs stay readable; report.json keeps every row


@dataclass
class DetailSection:
    title: str
    lines: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _records_table(caption: str, records: list[dict[str, Any]]) -> tuple[str, list[str], list[list[str]]]:
    headers = list(dict.fromkeys(k for r in records for k in r))
    shown = records[:MAX_DETAIL_ROWS]
    if len(records) > len(shown):
        caption += f" (first {len(shown)} of {len(records)}; all in report.json)"
    return caption, headers, [[_cell(r.get(h, "-")) for h in headers] for r in shown]


def method_details(report: RunReport) -> list[DetailSection]:
    """The method's own report keys, whatever their shape (dict, list of records, value):
    records become tables, everything else one line each."""
    sections = []
    for key, title in METHOD_SECTIONS.items():
        value = report.method_details.get(key)
        if not value:
            continue
        section = DetailSection(f"{report.method or 'method'}: {title}")
        for name, v in value.items() if isinstance(value, dict) else [("", value)]:
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                section.tables.append(_records_table(name, v))
            elif isinstance(v, dict) and v and all(isinstance(r, dict) for r in v.values()):
                section.tables.append(_records_table(name, [{"layer": n, **r} for n, r in v.items()]))
            else:
                section.lines.append(f"{name}: {_cell(v)}" if name else _cell(v))
        sections.append(section)
    return sections
