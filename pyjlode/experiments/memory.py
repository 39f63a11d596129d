"""Peak CPU memory of a profiled block, from the allocator's records (torch.profiler has no CPU peak counter)."""
from __future__ import annotations

from torch.profiler import profile


def peak_allocated(prof: profile) -> int:
    """Peak of the running sum of the allocation records of a ``profile(profile_memory=True)`` session.

    Each record is one allocation (+bytes) or free (-bytes) by the CPU allocator; frees of tensors made before
    the session are not recorded, so the sum starts at 0 with the session.
    """
    records = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]")
    total = peak = 0
    for _, nbytes in records:
        total += nbytes
        peak = max(peak, total)
    return peak
