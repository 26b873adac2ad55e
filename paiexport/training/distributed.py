"""Data-parallel training under `torchrun`: PyTorch's own DDP, nothing home-made.

`torchrun --nproc_per_node N -m paiexport run RECIPE` starts N processes with RANK,
WORLD_SIZE and LOCAL_RANK set. Every rank builds the same data, model and masks from the
recipe's seed; `init` joins the process group (`gloo` on CPU, `nccl` on CUDA, one GPU per
local rank), `wrap` hands training a DDP model (whose construction broadcasts rank 0's
weights and masks), and `shard` cuts each global batch of `data.batch_size` samples, in the
order the recipe's seed draws, into N equal slices: the global batch stays
`data.batch_size`, each rank sees batch_size / N, and DDP's gradient average equals the
single-process gradient of the whole batch. Dynamic methods average their dense gradients
across ranks (`average_across_ranks`) and draw from generators seeded identically on every
rank, so every rank computes the same mask update; `check_masks_agree` proves it with a hash
all-reduce at the start of training and after every update. Outside torchrun every function
here is a no-op, so single-process runs are unchanged.
"""

from __future__ import annotations

import atexit
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from paiexport.errors import UserError
from paiexport.inputs import take

# Test hook: each rank appends its mask hashes to <dir>/rank<R>.txt (see tests/training/test_distributed.py).
HASH_DIR_ENV = "PAIEXPORT_MASK_HASH_DIR"
Batch = tuple[torch.Tensor, torch.Tensor]


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets the env)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or a single process): the one that writes, exports, validates and benchmarks."""
    return rank() == 0


def local_device(device: str) -> str:
    """`cuda` means this rank's own GPU (LOCAL_RANK) under torchrun; an explicit index stays."""
    if device == "cuda" and launched():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def init(device: str, batch_size: int) -> int:
    """Join torchrun's process group (once); returns the world size (1 outside torchrun)."""
    if not launched() or int(os.environ["WORLD_SIZE"]) <= 1:
        return 1
    size = int(os.environ["WORLD_SIZE"])
    if batch_size % size:
        raise UserError(
            f"data.batch_size: {batch_size} is not divisible by the {size} torchrun processes "
            "(the global batch is split evenly across ranks)"
        )
    if not dist.is_initialized():
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(local_device("cuda"))
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(finish)
    return size


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: str) -> nn.Module:
    """The module training calls: DDP under torchrun (after checking masks agree), else `model`."""
    if not active():
        return model
    check_masks_agree(model, "start of training")
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    # Buffers (the masks) are broadcast once here; per-forward broadcasts would hide a mismatch.
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def steps_per_epoch(samples: int, batch_size: int) -> int:
    """Optimizer steps of one epoch: a last batch with fewer samples than ranks is dropped."""
    full, rest = divmod(samples, batch_size)
    return full + (rest >= world_size())


def shard(batches: Iterable[Batch]) -> Iterator[Batch]:
    """This rank's equal slice of each global batch (the last one trimmed to a multiple of ranks)."""
    size, me = world_size(), rank()
    for x, y in batches:
        if size == 1:
            yield x, y
            continue
        per_rank = len(y) // size
        if per_rank:
            yield take(x, slice(me * per_rank, (me + 1) * per_rank)), y[me * per_rank : (me + 1) * per_rank]


def average_across_ranks(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean over ranks of each tensor (in place): dense gradients of dynamic methods."""
    if active():
        for name in sorted(tensors):  # the same order on every rank
            dist.all_reduce(tensors[name], op=dist.ReduceOp.SUM)
            tensors[name].div_(world_size())
    return tensors


def mask_hash(model: nn.Module) -> int:
    """A 62-bit hash of every mask buffer (names, shapes and bits)."""
    digest = hashlib.sha256()
    for name, buffer in sorted(model.named_buffers()):
        if name.endswith("weight_mask"):
            digest.update(name.encode())
            digest.update(buffer.detach().bool().cpu().numpy().tobytes())
    return int.from_bytes(digest.digest()[:8], "little") >> 2


def check_masks_agree(model: nn.Module, when: str) -> None:
    """All-reduce the mask hash (max and min); any difference between ranks is an error."""
    if not active():
        return
    own = mask_hash(model)
    _record_hash(own, when)
    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    both = torch.tensor([own, -own], dtype=torch.int64, device=device)
    dist.all_reduce(both, op=dist.ReduceOp.MAX)
    if int(both[0]) != -int(both[1]):
        raise RuntimeError(
            f"distributed training: masks differ between ranks at {when} (rank {rank()} hash {own:x}); "
            "a mask update was not computed identically on every rank"
        )


def _record_hash(value: int, when: str) -> None:
    folder = os.environ.get(HASH_DIR_ENV)
    if folder:
        with (Path(folder) / f"rank{rank()}.txt").open("a") as f:
            f.write(f"{when}\t{value:x}\n")
