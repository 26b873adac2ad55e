"""Each file validated in each runtime besides onnxruntime: loads, parity, the task's primary metric."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from paiexport.bench.runtime_checks import RuntimeOutcome, check_in_runtimes, runtime_validations
from paiexport.bench.runtime_latency import RuntimeLatency
from paiexport.bench.runtimes import OnnxRuntime, Precision, RuntimeInfo, Session
from paiexport.data import Split
from paiexport.export.quantize import to_int8
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.export.variants import Int8Format, Int8Mode
from paiexport.tasks import make_task
from paiexport.tasks.classification import ClassificationConfig
from paiexport.verify.validate import Judging, picked, torch_outputs
from paiexport.verify.variants import validate_variants

TASK = make_task()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-layer MLP (Gemm nodes), labels it predicts, its float, QDQ and QOperator int8 files."""
    root = tmp_path_factory.mktemp("runtime_checks")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    x = torch.randn(400, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        test = Split(x, model(x).argmax(1))
    dense = to_onnx(model, (16,), 18)
    calibration = x[:64].numpy()
    files = {"dense": root / "model.onnx", "int8": root / "qdq.onnx", "int8.qop": root / "qop.onnx"}
    save_onnx(dense, files["dense"])
    for name, fmt in (("int8", Int8Format.qdq), ("int8.qop", Int8Format.qoperator)):
        save_onnx(to_int8(dense, Int8Mode.static, calibration, int8_format=fmt), files[name])
    outputs = torch_outputs(model, test.x)
    checks = validate_variants(files, model, test, Judging(TASK, 0.25, 10.0), reference=outputs)
    reference = picked(TASK, outputs)
    assert all(c.deployable for c in checks.values())  # in onnxruntime
    return files, checks, test, reference


class Noisy(OnnxRuntime):
    """onnxruntime's outputs plus 0.01: what a runtime computing in bf16 gives a float file."""

    name: ClassVar[str] = "noisy"

    def open(self, path: Path, threads: int) -> Session:
        session = super().open(path, threads)

        class Shifted:
            def get_inputs(self):
                return session.get_inputs()

            def get_outputs(self):
                return session.get_outputs()

            def run(self, names, feeds):
                return [out + 0.01 for out in session.run(names, feeds)]

        return Shifted()

    def precision(self) -> Precision:
        return Precision("bf16", "bf16")


class Blind(OnnxRuntime):
    name: ClassVar[str] = "blind"

    def open(self, path: Path, threads: int) -> Session:
        raise RuntimeError("Exception from core.cpp:84:\ncannot read this file")

    def unreadable(self, exc: BaseException) -> str:
        return str(exc).splitlines()[-1]


def test_a_file_a_runtime_cannot_open_is_reported_unreadable_not_raised(run):
    files, checks, test, reference = run
    found = check_in_runtimes([OnnxRuntime(), Blind()], files, checks, test, reference, TASK)
    assert list(found) == ["blind"]  # onnxruntime's checks are the run's `validation`
    check = found["blind"]["dense"]
    assert not check.loads and not check.deployable
    assert check.reason == "unreadable in blind: cannot read this file"
    entry = check.to_dict()
    assert entry["loads"] is False and entry["error"] == "cannot read this file"
    assert entry["metric"] is None and entry["parity"] is None and entry["max_abs_diff"] is None
    assert runtime_validations(found["blind"]) == {}  # never a deploy candidate there
    assert checks["dense"].loads  # the onnxruntime check is left as it was


def test_a_lossy_precision_is_judged_by_the_metric_drop_like_int8(run):
    files, checks, test, reference = run
    check = check_in_runtimes([Noisy()], files, checks, test, reference, TASK)["noisy"]["dense"]
    assert check.loads and check.check.max_abs_diff == pytest.approx(0.01, abs=1e-5)
    assert not check.check.parity and not check.check.parity_required  # bf16: no parity asked for
    assert check.deployable and check.reason.endswith("vs PyTorch (limit 10.0)")


def test_the_same_precision_must_match_pytorch(run):
    files, checks, test, reference = run

    class NoisyF32(Noisy):
        def precision(self) -> Precision:
            return Precision("f32", "f32")

    check = check_in_runtimes([NoisyF32()], files, checks, test, reference, TASK)["noisy"]["dense"]
    assert check.loads and not check.deployable and check.reason == "broken: parity"
    assert check.to_dict()["broken_checks"] == ["parity"]


def test_qdq_validates_in_openvino_within_the_limit_and_qoperator_is_unreadable(run):
    pytest.importorskip("openvino", reason="openvino is an optional extra: pip install 'paiexport[openvino]'")
    from paiexport.bench.runtimes import OpenVino

    files, checks, test, reference = run
    found = check_in_runtimes([OpenVino()], files, checks, test, reference, TASK)["openvino"]
    assert found["dense"].deployable and found["dense"].check.parity  # f32: parity with PyTorch
    qdq = found["int8"]
    assert qdq.loads and not qdq.check.parity_required
    assert qdq.check.metric_drop <= 10.0 and qdq.deployable
    qop = found["int8.qop"]
    assert not qop.loads and not qop.deployable
    why = "RuntimeError: No conversion rule found for operations: com.microsoft.QGemm"
    assert qop.reason == f"unreadable in openvino: {why}"
    assert set(runtime_validations(found)) == {"dense", "int8"}


def test_a_copy_is_measured_and_checked_as_its_source(run):
    files, checks, test, reference = run
    found = check_in_runtimes([Blind()], files, checks, test, reference, TASK)
    latency = RuntimeLatency(stats={"blind": {}}, unreadable={"blind": {"dense": "cannot read this file"}})
    info = {"blind": RuntimeInfo("blind", "1", "CPU", "f32", "f32", False)}
    copied = RuntimeOutcome(latency, found, info).with_copy("dense", "deploy")
    assert copied.checks["blind"]["deploy"].check.variant == "deploy"
    assert copied.checks["blind"]["deploy"].reason == "unreadable in blind: cannot read this file"
    assert copied.latency.unreadable["blind"]["deploy"] == "cannot read this file"
    assert "deploy" not in found["blind"]  # the original is left as it was


class Other(OnnxRuntime):
    """onnxruntime under another name: a second runtime whose outputs are exactly onnxruntime's."""

    name: ClassVar[str] = "other"


class TokensToDict(nn.Module):
    """(input_ids, attention_mask) -> {"pooled": ..., "logits": ...}: the task reads the second."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = nn.Embedding(20, 8), nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return {"pooled": pooled, "logits": self.head(pooled)}


def test_a_file_with_several_inputs_is_fed_all_of_them_and_judged_on_the_tasks_output(tmp_path):
    model = TokensToDict().eval()
    g = torch.Generator().manual_seed(2)
    x = {"input_ids": torch.randint(0, 20, (64, 6), generator=g), "attention_mask": torch.ones(64, 6).long()}
    task = make_task(ClassificationConfig(output="logits"))
    with torch.no_grad():
        test = Split(x, model(**x)["logits"].argmax(1))
    path = tmp_path / "model.onnx"
    save_onnx(to_onnx(model, {k: v[:2] for k, v in x.items()}, 18), path)
    outputs = torch_outputs(model, test.x)
    checks = validate_variants({"dense": path}, model, test, Judging(task, 0.25, 10.0), reference=outputs)
    found = check_in_runtimes([Other()], {"dense": path}, checks, test, picked(task, outputs), task)
    check = found["other"]["dense"]
    assert check.loads and check.check.parity and check.check.max_abs_diff < 1e-5
    assert check.check.metrics["accuracy"] == 1.0 and check.deployable
