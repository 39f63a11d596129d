"""Cubic Hermite dense output over one step."""
from __future__ import annotations

from torch import Tensor


def hermite_eval(t0: float, t1: float, y0: Tensor, f0: Tensor, y1: Tensor, f1: Tensor, t: float) -> Tensor:
    """The cubic Hermite interpolant of (y0, f0) at t0 and (y1, f1) at t1, evaluated at t.

    Third-order accurate, C1 across steps, and exact at both ends.
    """
    h = t1 - t0
    s = (t - t0) / h
    if s == 0.0:
        return y0
    if s == 1.0:
        return y1
    s2, s3 = s * s, s * s * s
    out = y0.mul(2 * s3 - 3 * s2 + 1)
    out.add_(y1, alpha=3 * s2 - 2 * s3)
    out.add_(f0, alpha=h * (s3 - 2 * s2 + s))
    out.add_(f1, alpha=h * (s3 - s2))
    return out
