"""Process-group helpers for multi-process training with torchrun and DistributedDataParallel.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them everything here is a
no-op for one process, so the training loop calls the same functions either way.

Sharding: the global batch is batchified once into a (T, B) stream of B columns; rank r of N takes the
contiguous block of B/N columns ``[r*B/N, (r+1)*B/N)``. Each rank's loss is the mean over its tokens and DDP
averages gradients, so the update equals that of one process on the whole (T, B) batch. Checkpoints hold the
unwrapped model, the global batch size and global (gathered) recurrent state, so a run resumes on any number
of ranks that divides the batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import InputError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, number of ranks, local rank on its node, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True when running under a process group of more than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the rank that logs and writes checkpoints (rank 0)."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process job (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InputError("`device` cuda was asked for but CUDA is not available; use `device` cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(device)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA), or describe one process.

    Args:
        device: "auto", "cpu" or "cuda"; under torchrun each rank uses cuda:LOCAL_RANK.

    Returns:
        DistInfo for this process.
    """
    if not launched_by_torchrun():
        return DistInfo(device=_pick_device(device, 0))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, dev, backend)


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_divisible(batch_size: int, world_size: int) -> None:
    """Raise a one-line InputError unless the global batch splits evenly over the ranks."""
    if batch_size % world_size:
        raise InputError(f"`batch_size` {batch_size} does not split over {world_size} processes; "
                         f"use a multiple of {world_size}")


def shard_columns(data: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous block of columns of a batchified (T, B) stream (all of it for one rank).

    Raises:
        InputError: B is not a multiple of the number of ranks.
    """
    if info.world_size == 1:
        return data
    check_divisible(data.shape[1], info.world_size)
    per = data.shape[1] // info.world_size
    return data[:, info.rank * per:(info.rank + 1) * per].contiguous()


def shard_state(state: Any, info: DistInfo, dim: int = -2) -> Any:
    """This rank's block of a global recurrent state (tensors or nested tuples/lists; batch on ``dim``)."""
    if info.world_size == 1 or state is None:
        return state
    if isinstance(state, (tuple, list)):
        return type(state)(shard_state(s, info, dim) for s in state)
    per = state.shape[dim] // info.world_size
    return state.narrow(dim, info.rank * per, per).contiguous()


def gather_state(state: Any, info: DistInfo, dim: int = -2) -> Any:
    """Concatenate every rank's block of a recurrent state along ``dim`` (inverse of shard_state).

    Collective: every rank must call it. Returns the global state on every rank.
    """
    if info.world_size == 1 or state is None:
        return state
    if isinstance(state, (tuple, list)):
        return type(state)(gather_state(s, info, dim) for s in state)
    parts = [torch.empty_like(state) for _ in range(info.world_size)]
    dist.all_gather(parts, state.detach().contiguous())
    return torch.cat(parts, dim=dim)


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a short list of floats over all ranks (e.g. NLL totals and token counts); float64 on the wire."""
    if info.world_size == 1:
        return list(values)
    device = info.device if info.backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank (collective).

    For failures one rank sees alone (a non-finite loss, an adaptive solve that fails on its columns):
    if that rank raised while the others entered DDP's gradient all-reduce, they would wait forever.
    """
    if info.world_size == 1:
        return bool(flag)
    return all_reduce_sum([1.0 if flag else 0.0], info)[0] > 0


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank ``src``'s picklable object on every rank (e.g. a stop decision, so all ranks stop together)."""
    if info.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.world_size > 1:
        dist.barrier()


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` under a process group, else the model itself.

    DDP broadcasts rank 0's parameters at construction, so every rank starts from the same weights.
    """
    if info.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints save), or the module itself."""
    return getattr(model, "module", model)
