"""DDP under torchrun on CPU (gloo): sharded global batch, identical masks, rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from paiexport.errors import UserError
from paiexport.sparsity.masks import attach_masks
from paiexport.training import distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_rigl90(tmp_path: Path) -> None:
    """The issue's acceptance test: rigl90, 2 epochs, 2 gloo ranks; one run folder, same masks."""
    out, hashes = tmp_path / "run", tmp_path / "hashes"
    hashes.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", distributed.HASH_DIR_ENV: str(hashes)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    run = ["-m", "paiexport", "run", "rigl90", "--out", str(out)]
    sets = ["train.epochs=2", "method.update_every=10", "bench.iterations=2", "bench.warmup=1"]
    sets += ["bench.batch_sizes=[1]", "export.formats=[dense]"]
    cmd = [*torchrun, "--master_port", str(_free_port()), *run, *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2
    assert report["sparsity"]["reached"] == pytest.approx(0.9, abs=1e-4)
    assert report["mask_updates"]["count"] == 4  # steps 10..40 of 2 x 29, before 75% of training
    rank0, rank1 = ((hashes / f"rank{r}.txt").read_text().splitlines() for r in (0, 1))
    assert len(rank0) == 5 and rank0 == rank1  # start of training + 4 updates, equal hashes
    assert len({line.split("\t")[1] for line in rank0}) == 5  # the masks did change
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hashes", "run"]  # rank 1 wrote nothing


def test_batch_size_must_divide_by_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UserError, match=r"^data\.batch_size: 128 is not divisible by the 3"):
        distributed.init("cpu", 128)


def test_single_process_is_untouched() -> None:
    model = nn.Linear(2, 2)
    batches = [(torch.zeros(5, 2), torch.zeros(5))]
    assert distributed.wrap(model, "cpu") is model
    assert list(distributed.shard(batches)) == batches
    assert distributed.steps_per_epoch(11, 5) == 3
    assert distributed.world_size() == 1


def _worker(rank: int, port: int, out: str) -> None:
    """Both gloo scenarios in one spawn (starting processes costs seconds on a loaded machine)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    results = {"sharded_step": _sharded_step(rank)}
    try:
        results["mismatched_masks"] = _mismatched_masks(rank)
    except RuntimeError as exc:
        results["mismatched_masks"] = f"error: {exc}"
    Path(out, f"{rank}.json").write_text(json.dumps(results))
    # Both ranks leave gloo together: a rank tearing it down while the other is still inside
    # it aborted the process once ("terminate called without an active exception", SIGABRT).
    dist.barrier()
    dist.destroy_process_group()


def _sharded_step(rank: int) -> dict:
    """One SGD step of a 2-rank DDP on its shards of a batch of 6 (last batch of 3 trimmed to 2)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2, bias=False)
    x, y = torch.arange(27.0).view(9, 3) / 10, torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1])
    batches = [(x[:6], y[:6]), (x[6:], y[6:])]
    shards = list(distributed.shard(batches))
    net = distributed.wrap(model, "cpu")
    nn.functional.cross_entropy(net(shards[0][0]), shards[0][1]).backward()
    return {
        "rows": [s[1].tolist() for s in shards],
        "steps": distributed.steps_per_epoch(9, 6),
        "grad": model.weight.grad.tolist(),
    }


def _mismatched_masks(rank: int) -> str:
    model = nn.Linear(2, 2)
    attach_masks(model, {"weight": torch.tensor([[True, False], [True, True]]) if rank else torch.eye(2) > 0})
    distributed.check_masks_agree(model, "mask update 7 (step 70)")
    return "agreed"


def test_ddp_gradient_equals_whole_batch_and_mask_mismatch_is_an_error(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    rank0, rank1 = (r["sharded_step"] for r in results)
    assert rank0["rows"] == [[0, 1, 1], [0]] and rank1["rows"] == [[0, 1, 0], [1]]
    assert rank0["steps"] == 2
    torch.manual_seed(0)
    model = nn.Linear(3, 2, bias=False)
    x, y = torch.arange(27.0).view(9, 3) / 10, torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1])
    nn.functional.cross_entropy(model(x[:6]), y[:6]).backward()
    for rank in (rank0, rank1):  # DDP's average of the two halves is the whole batch's gradient
        assert torch.allclose(torch.tensor(rank["grad"]), model.weight.grad, atol=1e-6)
    for result in results:
        expected = "error: distributed training: masks differ between ranks at mask update 7"
        assert result["mismatched_masks"].startswith(expected)
