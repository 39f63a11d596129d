"""Cubic Hermite dense output and quadrature over one step."""
from __future__ import annotations

import math

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


# 3-point Gauss-Legendre on [0, 1]: exact for polynomials of degree 5.
_GL3_NODES = (0.5 - math.sqrt(15) / 10, 0.5, 0.5 + math.sqrt(15) / 10)
_GL3_WEIGHTS = (5 / 18, 8 / 18, 5 / 18)


def hermite_quad(problem, t: float, dt: float, y0: Tensor, f0: Tensor, y1: Tensor, f1: Tensor) -> tuple:
    """``int_t^{t+dt} quad(s, y(s)) ds`` with y(s) the step's cubic Hermite interpolant.

    Three-point Gauss-Legendre, three ``problem.q_eval`` calls (for methods, such as
    Rosenbrock, whose stages are not points on the solution).
    """
    total = None
    for s, w in zip(_GL3_NODES, _GL3_WEIGHTS):
        q = problem.q_eval(t + s * dt, hermite_eval(t, t + dt, y0, f0, y1, f1, t + s * dt))
        if total is None:
            total = [qi * (w * dt) for qi in q]
        else:
            for acc, qi in zip(total, q):
                acc.add_(qi, alpha=w * dt)
    return tuple(total)
