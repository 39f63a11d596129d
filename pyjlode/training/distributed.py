"""Process-group helpers for multi-process training with torchrun (data parallel, gloo or nccl).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them everything here is a
no-op for one process, so the training loop calls the same functions either way.

Sharding: the global batch is batchified once into a (T, B) stream of B columns; rank r of N takes the
contiguous block of B/N columns ``[r*B/N, (r+1)*B/N)``. Each rank's loss is the mean over its tokens and the
gradients are averaged over the ranks, so the update equals that of one process on the whole (T, B) batch.
Checkpoints hold the model, the global batch size and global (gathered) recurrent state, so a run resumes on
any number of ranks that divides the batch.

A step is forward and backward on each rank alone, then one agreement (:func:`agree_on_failure`), then the
gradient average (:func:`average_gradients`). Nothing in forward or backward talks to another rank, so a rank
whose adjoint solve fails mid-backward cannot leave the others waiting in a collective it never joins (as it
would with DistributedDataParallel, whose all-reduce runs inside ``backward()``): every rank learns of the
failure at the agreement and stops with the failing rank's message before any update.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import chain
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


@dataclass(frozen=True)
class RankFailure:
    """A step that failed somewhere: the failing ranks (lowest first) and the lowest one's message."""

    ranks: tuple[int, ...]
    world_size: int
    message: str

    def origin(self) -> str:
        """' on rank r of N' (and how many more failed) under several ranks; '' for one process."""
        if self.world_size == 1:
            return ""
        more = len(self.ranks) - 1
        return f" on rank {self.ranks[0]} of {self.world_size}" + (f" (and {more} more)" if more else "")


def agree_on_failure(message: str | None, info: DistInfo) -> RankFailure | None:
    """Collective: every rank says how its step went (a one-line failure message, or None for success) and
    every rank gets the same answer: None when all succeeded, else the lowest failing rank's message.

    One all-reduce of a flag per rank when all went well; the message travels only on failure.
    """
    if info.world_size == 1:
        return None if message is None else RankFailure((0,), 1, message)
    flags = [0.0] * info.world_size
    flags[info.rank] = float(message is not None)
    failed = tuple(r for r, flag in enumerate(all_reduce_sum(flags, info)) if flag)
    if not failed:
        return None
    return RankFailure(failed, info.world_size, broadcast_object(message, info, src=failed[0]))


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


# The size DistributedDataParallel gives its gradient buckets: few collectives, bounded extra memory.
BUCKET_BYTES = 25 * 2**20


def replicate(model: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (collective): all ranks start from one model."""
    if info.world_size == 1:
        return
    with torch.no_grad():
        for tensor in chain(model.parameters(), model.buffers()):
            dist.broadcast(tensor, src=0)


def average_gradients(params, info: DistInfo) -> None:
    """Replace each parameter's gradient by its mean over the ranks, in place (collective).

    Gradients travel as flat buckets of at most BUCKET_BYTES; a parameter without a gradient on this rank
    counts as zeros, so every rank sends the same buckets.
    """
    if info.world_size == 1:
        return
    grads = []
    for p in params:
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(info.world_size)
        for g, part in zip(bucket, flat.split([g.numel() for g in bucket])):
            g.copy_(part.view_as(g))


def _buckets(tensors: list[torch.Tensor]):
    """Consecutive runs of tensors of one dtype and device, each at most BUCKET_BYTES (or one tensor)."""
    bucket, size = [], 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        kind_changes = bucket and (t.dtype, t.device) != (bucket[0].dtype, bucket[0].device)
        if bucket and (size + nbytes > BUCKET_BYTES or kind_changes):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += nbytes
    if bucket:
        yield bucket
