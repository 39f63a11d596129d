"""Memory of one training step, measured two ways that work on CPU (where torch.cuda's peak counters do not):

- **saved**: the bytes of the tensors autograd keeps for backward after the forward pass, counted by
  ``torch.autograd.graph.saved_tensors_hooks`` (distinct storages, parameters excluded). This is the memory
  the adjoint method removes: backprop through a solver saves every stage's activations, the adjoint's
  backsolve saves the output alone.
- **peak**: the peak, over forward and backward, of the CPU allocator's running total of bytes allocated since
  the step began, from ``torch.profiler``'s memory records. It includes temporaries, the backward's own
  work (the adjoint's re-evaluations) and the parameter gradients.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

from .memory import peak_allocated

MB = 2.0 ** 20


class SavedTensorMeter:
    """Counts the distinct storages autograd saves for backward while active (a context manager)."""

    def __init__(self, exclude=()):
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._sizes: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        # saved tensors stay alive until backward, so no two of them share an address by reuse
        if ptr not in self._exclude:
            self._sizes.setdefault(ptr, storage.nbytes())
        return t

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


@contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: some torch builds print two trace lines per profiler start/stop there."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def step_memory(model: nn.Module, x: Tensor, y: Tensor) -> dict:
    """``{"saved_mb", "peak_mb"}`` of one cross-entropy forward + backward of ``model`` on (x, y), no update.

    The model's gradients are cleared first (and left filled), so their allocation counts in the peak.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    meter = SavedTensorMeter(exclude=list(model.parameters()))
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():   # only around start and stop: errors of the step itself still show
        prof.start()
    try:
        with meter:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    finally:
        with _quiet_stderr():
            prof.stop()
    model.zero_grad(set_to_none=True)
    return {"saved_mb": meter.bytes / MB, "peak_mb": peak_allocated(prof) / MB}
