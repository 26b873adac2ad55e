"""What every runtime offers: its precision (lossy or not), whether its package imports, its info."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

import pytest

from paiexport.bench.runtimes.base import Precision, Runtime, Session


class Fake(Runtime):
    name: ClassVar[str] = "fake"
    package: ClassVar[str] = "json"
    extra: ClassVar[str | None] = "fake"

    def open(self, path: Path, threads: int) -> Session:
        raise ValueError("cannot read\nsecond line")

    def version(self) -> str:
        return "1.2.3-build"

    def precision(self) -> Precision:
        return Precision("bf16", "f32")

    def device(self) -> str:
        return "CPU"


def test_precision_says_which_float_precisions_lose_parity():
    assert Precision("bf16", "f32").lossy_default and not Precision("bf16", "f32").lossy
    assert not Precision("f32", "f32").lossy_default
    assert Precision("f16", "f16").lossy


def test_a_runtime_is_installed_when_its_package_imports(monkeypatch):
    assert Fake.installed()
    monkeypatch.setitem(sys.modules, "json", None)  # what an absent package looks like to import
    assert not Fake.installed()


def test_info_reports_the_default_and_the_precision_used():
    info = Fake().info()
    assert info.to_dict() == {
        "name": "fake",
        "version": "1.2.3-build",
        "device": "CPU",
        "default_precision": "bf16",
        "precision": "f32",
        "lossy_default": True,
    }


def test_why_a_file_did_not_open_is_one_line(tmp_path):
    with pytest.raises(ValueError) as caught:
        Fake().open(tmp_path / "a.onnx", 1)
    assert Fake().unreadable(caught.value) == "ValueError: cannot read"
