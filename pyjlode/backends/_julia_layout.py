"""How tensors cross into Julia: zero-copy views with the dimensions reversed, or a CPU copy.

A C-contiguous torch ``(B, H)`` tensor is, read column-major, a Julia ``(H, B)`` array over the same
memory in the same element order, so CPU tensors become F-contiguous numpy views (juliacall wraps
them without copies) and CUDA tensors go through DLPack, which reverses dimensions the same way.
Julia never sees autograd: every tensor is detached before it crosses (torch's ``__dlpack__``
refuses tensors that require grad). CUDA tensors are copied to the CPU and back unless zero-copy
CUDA was enabled before Julia started (see ``_julia_runtime``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import _julia_runtime as _rt


def to_julia_layout(t: Tensor) -> np.ndarray:
    """Zero-copy numpy view of a CPU tensor with its dimensions reversed.

    A C-contiguous torch ``(B, H)`` tensor becomes an F-contiguous ``(H, B)`` array over the same
    memory, which juliacall hands to Julia as a ``PyArray`` with fast linear indexing.
    """
    if t.device.type != "cpu":
        raise ValueError(f"to_julia_layout needs a CPU tensor, got one on {t.device}")
    return t.detach().numpy().T


def from_julia_layout(a: np.ndarray) -> Tensor:
    """The inverse of :func:`to_julia_layout`: Julia ``(H, B)`` memory as a torch ``(B, H)`` view."""
    return torch.from_numpy(np.asarray(a).T)


def julia_device(device: torch.device) -> torch.device:
    """Where Julia reads and writes for tensors on ``device``: the device itself or the CPU."""
    if device.type == "cuda" and not _rt.cuda_zero_copy():
        return torch.device("cpu")
    return device


def uses_dlpack(t: Tensor) -> bool:
    """Whether ``t`` (already on :func:`julia_device`) crosses through DLPack."""
    return t.device.type == "cuda"


def to_julia(t: Tensor | None):
    """What Julia receives for ``t`` (on :func:`julia_device`): a numpy view or a CuArray."""
    if t is None:
        return None
    return _rt.from_dlpack(t.detach()) if uses_dlpack(t) else to_julia_layout(t)


def to_host(t: Tensor | None, device: torch.device) -> Tensor | None:
    """``t`` detached, contiguous and on ``device`` (no copy when it already is)."""
    return None if t is None else t.detach().to(device).contiguous()


def sync(device: torch.device) -> None:
    """Wait for torch's pending CUDA work: Julia uses its own stream."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
