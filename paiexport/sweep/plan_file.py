"""sweep.json: the plan of a whole sweep (all shards), which `paiexport sweep --collect DIR` reads back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paiexport.errors import UserError
from paiexport.recipe import read_recipe_file, validate_recipe
from paiexport.sweep.collect import is_complete
from paiexport.sweep.plan import PlannedRun

PLAN_FILE = "sweep.json"


def write_plan(runs: list[PlannedRun], extra_keys: list[str], title: str, out_dir: Path) -> None:
    """sweep.json: every run of the whole sweep (all shards), for `--collect`."""
    plan = {
        "title": title,
        "extra_keys": extra_keys,
        "runs": [{"name": r.name, "assignments": r.assignments} for r in runs],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PLAN_FILE).write_text(json.dumps(plan, indent=1) + "\n")


def read_plan(out_dir: Path) -> tuple[list[PlannedRun], list[str], str]:
    """The planned runs of a sweep folder (recipes read back from the run folders)."""
    path = out_dir / PLAN_FILE
    if not path.is_file():
        raise UserError(f"--collect {out_dir}: no {PLAN_FILE} (not a sweep folder)")
    entries, extra_keys, title = _plan_fields(path)
    missing = [e["name"] for e in entries if not (out_dir / e["name"] / "report.json").is_file()]
    if missing:
        listed = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(
            f"--collect {out_dir}: {len(missing)} of {len(entries)} runs not finished ({listed}); "
            "run the missing shards first"
        )
    runs = []
    for e in entries:
        raw = read_recipe_file(out_dir / e["name"] / "recipe.yaml")  # missing, unparsable: exit 2
        run = PlannedRun(e["name"], e["assignments"], validate_recipe(raw, str(out_dir / e["name"])))
        is_complete(run, out_dir)  # a folder holding another recipe's report is an error
        runs.append(run)
    return runs, extra_keys, title


def _plan_fields(path: Path) -> tuple[list[dict[str, Any]], list[str], str]:
    """sweep.json's runs (each a plain folder name and its assignments), extra keys and title."""
    bad = UserError(f"{path}: not a sweep plan written by paiexport sweep")
    try:
        plan = json.loads(path.read_text())
        entries, extra_keys, title = plan["runs"], plan["extra_keys"], plan["title"]
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, KeyError, TypeError):
        raise bad from None
    if not (isinstance(entries, list) and isinstance(title, str) and isinstance(extra_keys, list)):
        raise bad
    if not all(isinstance(k, str) for k in extra_keys) or not all(_is_entry(e) for e in entries):
        raise bad
    return entries, extra_keys, title


def _is_entry(entry: Any) -> bool:
    """{"name": a folder directly inside the sweep folder, "assignments": {key: value}}."""
    if not isinstance(entry, dict) or not isinstance(entry.get("assignments"), dict):
        return False
    name = entry.get("name")
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
