"""The runtime registry (paiexport/bench/runtimes/__init__.py): names, and runtimes not installed."""

from __future__ import annotations

import sys

import pytest

from paiexport.bench.runtimes import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    OnnxRuntime,
    OpenVino,
    check_names,
    make_runtimes,
)
from paiexport.errors import UserError


def test_registry_names_each_runtime_by_its_class():
    assert {"onnxruntime": OnnxRuntime, "openvino": OpenVino} == RUNTIMES
    assert all(cls.name == name for name, cls in RUNTIMES.items())
    assert DEFAULT_RUNTIME == "onnxruntime" and OnnxRuntime.extra is None and OpenVino.extra == "openvino"


def test_the_deploy_runtime_field_accepts_exactly_the_registry():
    from typing import get_args

    from paiexport.export.config import DeployRuntime

    assert set(get_args(DeployRuntime)) == set(RUNTIMES)


def test_unknown_names_are_refused_naming_where_they_came_from():
    assert check_names(["onnxruntime", "onnxruntime"], "--runtime") == ["onnxruntime"]
    with pytest.raises(UserError) as caught:
        check_names(["onnxruntime", "tvm"], "--runtime")
    assert str(caught.value) == "--runtime: unknown runtime 'tvm' (choose from onnxruntime, openvino)"


def test_a_runtime_not_installed_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # openvino absent
    with pytest.raises(UserError) as caught:
        make_runtimes(["onnxruntime", "openvino"], "--runtime")
    assert str(caught.value) == "--runtime openvino: not installed; pip install 'paiexport[openvino]'"
    assert [r.name for r in make_runtimes(["onnxruntime"], "bench.runtimes")] == ["onnxruntime"]
