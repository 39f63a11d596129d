"""Dense output over one step: each method's own interpolant from its stages, the cubic Hermite
fallback, and the Hermite quadrature.

Memory: a dense solve keeps, per accepted step, y and f at its end plus the stage tensors its
interpolant reads (``Interpolant.idx``), each shaped like y. They are references to tensors the step
computed anyway; stage 0 of an explicit method is f0 and the FSAL last stage is f1, already kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

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


@dataclass(frozen=True, slots=True)
class Interpolant:
    """A method's dense output as Python floats, in the form the loop evaluates.

    ``y(t0 + s h) = y0 + sum_j w_j(s) K_idx[j]`` with ``w_j(s) = sum_m coef[j][m] s^(m+1)`` the paper's
    ``b_i(s)``; or, ``with_y1``, ``(1 - s) y0 + s y1 + sum_j w_j(s) K_idx[j]`` with ``w_j`` the paper's
    ``b_i(s) - s b_i`` (the same polynomial since y1 = y0 + sum b_i K_i), which drops the stages whose
    b_i(s) is s b_i (Rosenbrock23 keeps 1 stage of 3, Rodas4 5 of 6). The form that keeps fewer
    stages wins, ties going to the one with fewer tensor operations. ``K_i`` is ``h k_i`` for derivative
    stages (``per_dt``), the stage itself otherwise. ``idx`` empty: the cubic Hermite of (y, f).

    Attributes:
        name: the interpolant's name, as its source gives it.
        order: its order (the error at fixed s is O(h^(order+1))).
        idx: the stages a step keeps for it.
        coef: per kept stage, the coefficients of s^1, s^2, ...
        per_dt: the stages are derivatives (explicit RK), scaled by h.
        with_y1: the second form above.
    """

    name: str
    order: int
    idx: tuple = ()
    coef: tuple = ()
    per_dt: bool = False
    with_y1: bool = False

    @staticmethod
    def from_dense(dense, b, per_dt: bool) -> "Interpolant":
        """From a tableau's :class:`~pyjlode.ode.tableaus.DenseOutput` and its weights b."""
        full = [tuple(float(x) for x in row) for row in dense.P]
        rel = [(w[0] - float(bi), *w[1:]) for w, bi in zip(full, b)]
        with_y1 = sum(map(any, rel)) < sum(map(any, full))
        rows = rel if with_y1 else full
        idx = tuple(i for i, w in enumerate(rows) if any(w))
        return Interpolant(dense.name, dense.order, idx, tuple(rows[i] for i in idx), per_dt, with_y1)

    @property
    def uses_stages(self) -> bool:
        return bool(self.idx)

    def keep(self, stages: tuple) -> tuple:
        """The stages of an accepted step that this interpolant reads (empty for Hermite)."""
        return tuple(stages[i] for i in self.idx) if self.idx and stages else ()


HERMITE = Interpolant("cubic Hermite", 3)


def interpolate(ip: Interpolant, t0: float, t1: float, y0: Tensor, f0: Tensor, y1: Tensor, f1: Tensor,
                kept: Optional[tuple], t: float) -> Tensor:
    """y(t) on the step [t0, t1]: the method's interpolant from its kept stages, else cubic Hermite."""
    if kept and ip.idx:
        return stage_eval(ip, t0, t1, y0, y1, kept, t)
    return hermite_eval(t0, t1, y0, f0, y1, f1, t)


def stage_eval(ip: Interpolant, t0: float, t1: float, y0: Tensor, y1: Tensor, kept: tuple, t: float) -> Tensor:
    """A stage-based interpolant (explicit RK, Rosenbrock, ESDIRK alike) at t; exact at both ends."""
    h = t1 - t0
    s = (t - t0) / h
    if s == 0.0:
        return y0
    if s == 1.0:
        return y1
    scale = s * (h if ip.per_dt else 1.0)
    out = None
    if ip.with_y1:
        out = y0.mul(1.0 - s)
        out.add_(y1, alpha=s)
    for K, row in zip(kept, ip.coef):
        w = 0.0
        for c in reversed(row):     # Horner for sum_m c_m s^(m-1); scale holds the other s
            w = w * s + c
        if out is None:
            out = y0.add(K, alpha=w * scale)
        else:
            out.add_(K, alpha=w * scale)
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
