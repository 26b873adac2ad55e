"""A SparseML recipe as a native recipe: a dict for the loader, commented YAML for `recipes convert`.

Parameter patterns are kept as written (`re:`, `__ALL_PRUNABLE__`): the `gmp` groups resolve
them against the model at run time, so the conversion needs no model. Sections SparseML
recipes do not have (model, data, export formats, bench) are left to `--set` and the
project defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from paiexport.sparseml.load import RawModifier, SparseMLRecipe, load_sparseml
from paiexport.sparseml.lr_schedule import lr_segments, manager_order
from paiexport.sparseml.modifiers import (
    GROUP_SCHEDULE_FIELDS,
    ConstantPruningModifier,
    GlobalMagnitudePruningModifier,
    GMPruningModifier,
    QuantizationModifier,
    SetWeightDecayModifier,
    SparseMLModifier,
    parse_modifiers,
)
from paiexport.sparseml.schedule import total_epochs

QUANTIZATION_NOTE = (
    "QuantizationModifier: paiexport quantizes to int8 after training (static post-training "
    "quantization), not quantization-aware training; the recipe's QAT epochs train in float"
)


def _groups(raw: RawModifier, mod: SparseMLModifier) -> list[tuple[str, dict[str, Any]]]:
    origin = f"{raw.where} {raw.name}"
    if isinstance(mod, ConstantPruningModifier):
        return [(origin, {"kind": "constant", "params": mod.params, "start_epoch": mod.start_epoch})]
    kind = "global" if isinstance(mod, GlobalMagnitudePruningModifier) else "layer"
    fields = mod.model_dump(include=set(GROUP_SCHEDULE_FIELDS))
    return [
        (origin, {"kind": kind, "params": patterns, "final_sparsity": final, **fields})
        for final, patterns in mod.groups()
    ]


def recipe_name(path: Path) -> str:
    stem = path.name.rsplit(".", 1)[0] if path.suffix else path.name
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem).lstrip("._-")[:100] or "sparseml"


def native_sections(recipe: SparseMLRecipe, path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The native recipe dict and, per section or group, where it came from."""
    mods = parse_modifiers(recipe)
    origins: dict[str, str] = {}
    groups: list[dict[str, Any]] = []
    for raw, mod in zip(recipe.modifiers, mods, strict=True):
        if isinstance(mod, GMPruningModifier | ConstantPruningModifier):
            for origin, group in _groups(raw, mod):
                origins[f"group{len(groups)}"] = origin
                groups.append(group)
    lr = lr_segments(mods)
    decay = [
        {"start_epoch": m.start_epoch, "weight_decay": m.weight_decay}
        for m in manager_order(mods)
        if isinstance(m, SetWeightDecayModifier)
    ]
    train: dict[str, Any] = {
        "epochs": total_epochs(mods, recipe.source),
        "checkpoint": "last",
        "lr_schedule": {"name": "piecewise", "segments": [s.model_dump(mode="json") for s in lr]},
    }
    if decay:
        train["weight_decay_schedule"] = decay
    native: dict[str, Any] = {
        "name": recipe_name(path),
        "method": {"name": "gmp", "groups": groups},
        "train": train,
    }
    if any(isinstance(m, QuantizationModifier) for m in mods):
        native["export"] = {"int8": "static"}
        origins["export"] = (
            "QuantizationModifier: int8 after training (post-training, not quantization-aware)"
        )
        native["method"]["notes"] = [QUANTIZATION_NOTE]
    return native, origins


def sparseml_to_native(path: Path) -> dict[str, Any]:
    """The native recipe dict of a SparseML file (what `load_recipe` validates)."""
    return native_sections(load_sparseml(path), path)[0]


def _dump(obj: Any, indent: str = "") -> str:
    text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=None, width=110)
    return "".join(indent + line + "\n" for line in text.splitlines())


def native_yaml(path: Path) -> str:
    """`paiexport recipes convert`: the native recipe, commented with where each part came from."""
    recipe = load_sparseml(path)
    native, origins = native_sections(recipe, path)
    lines = [
        f"# Converted from the SparseML recipe {path} by `paiexport recipes convert`.",
        "# model, data, export formats and bench: the project defaults (set them here or with --set).",
        f"name: {native['name']}",
        "# method.groups: one group per pruning modifier (or per final_sparsity key); weights in",
        "# no group stay dense. params are SparseML patterns, resolved against the model at run time.",
        "method:\n  name: gmp\n  groups:",
    ]
    for i, group in enumerate(native["method"]["groups"]):
        lines += [f"    # from {origins[f'group{i}']}", _dump([group], "    ").rstrip("\n")]
    if "notes" in native["method"]:
        lines += ["  # notes: copied into report.json", _dump({"notes": native["method"]["notes"]}, "  ")]
    lines += [
        "# train.epochs: SparseML's max_epochs (EpochRangeModifier, else the last modifier's end).",
        "# train.lr_schedule.segments: the LR modifiers in SparseML's manager order (Set -> set,",
        "# LearningRateFunctionModifier -> function, LearningRateModifier -> torch);",
        "# train.weight_decay_schedule: SetWeightDecayModifier.",
        _dump({"train": native["train"]}).rstrip("\n"),
    ]
    if "export" in native:
        lines += [f"# from {origins['export']}", _dump({"export": native["export"]}).rstrip("\n")]
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"
