"""Dense output over one step: each method's own interpolant from its stages, or the cubic Hermite
fallback.

Memory: a dense solve keeps, per accepted step, y and f at its end plus the interpolant's D_j
(``Interpolant.compress``), each shaped like y: Tsit5, DP5 and Rodas5P 3, Rodas4 2, Rosenbrock23 1
(a reference to its second stage), the Hermite methods none.
"""
from __future__ import annotations

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
    """A method's dense output as Python floats, in the form a step stores and the loop evaluates.

    ``y(t0 + s h) = base(s) + sum_j phi_j(s) D_j`` with ``D_j = sum_i M[j][i] K_i``, ``K_i`` the stage
    increments (``h k_i`` for derivative stages, ``per_dt``; the stage itself otherwise). ``base`` is
    ``y0``, ``y0 + s h f0`` (``"f0"``: an explicit method whose ``b_i(s)`` start ``s`` for stage 0 only)
    or ``(1 - s) y0 + s y1`` (``"y1"``: the phi_j vanish at s = 1). A step keeps the D_j, built from its
    stages once it is accepted (``compress``): fewer tensors than the stages (Tsit5 3 for 7 stages,
    Rodas5P 3 for 8) and fewer operations per evaluation. Empty ``M``: the cubic Hermite of (y, f).

    Attributes:
        name: the interpolant's name, as its source gives it.
        order: its order (the error at fixed s is O(h^(order+1))).
        M: rows ``((i, M_ji), ...)`` over the stages, nonzero entries only.
        phi: per row, the coefficients of s^1, s^2, ...
        per_dt: the stages are derivatives (explicit RK), scaled by h.
        base: ``"y0"``, ``"f0"`` or ``"y1"``.
    """

    name: str
    order: int
    M: tuple = ()
    phi: tuple = ()
    per_dt: bool = False
    base: str = "y0"

    @staticmethod
    def from_dense(dense, b, per_dt: bool) -> "Interpolant":
        """The form with the fewest stored tensors for a tableau's
        :class:`~pyjlode.ode.tableaus.DenseOutput` ``b_i(s) = sum_m P[i][m] s^(m+1)`` and weights b."""
        P = [[float(x) for x in row] for row in dense.P]
        rel = [[w[0] - float(bi), *w[1:]] for w, bi in zip(P, b)]    # b_i(s) - s b_i
        cols = list(zip(*P))
        f0 = per_dt and cols[0][0] == 1.0 and not any(cols[0][1:])
        width = len(P[0])
        unit = [tuple(float(m == k) for m in range(width)) for k in range(width)]
        forms = [  # (base, M rows over stages, phi rows)
            ("f0" if f0 else "y0", [c for m, c in enumerate(cols) if any(c) and not (f0 and m == 0)],
             [unit[m] for m, c in enumerate(cols) if any(c) and not (f0 and m == 0)]),
            ("y1", [[float(i == j) for i in range(len(P))] for j, r in enumerate(rel) if any(r)],
             [r for r in rel if any(r)]),
        ]
        if dense.H is not None:    # Rodas: phi_j = s^j (1 - s)
            forms.append(("y1", [[float(x) for x in h] for h in dense.H],
                          [(0.0,) * j + (1.0, -1.0) for j in range(len(dense.H))]))
        base, M, phi = min(forms, key=lambda f: len(f[1]))
        M = tuple(tuple((i, a) for i, a in enumerate(row) if a != 0) for row in M)
        return Interpolant(dense.name, dense.order, M, tuple(tuple(r) for r in phi), per_dt, base)

    @property
    def uses_stages(self) -> bool:
        return bool(self.M)

    def compress(self, stages: tuple, h: float) -> tuple:
        """The D_j of an accepted step of size h (empty for Hermite or a step without stages)."""
        if not (self.M and stages):
            return ()
        scale = h if self.per_dt else 1.0
        out = []
        for row in self.M:
            (i, a), *rest = row
            if not rest and a * scale == 1.0:   # a stage itself (Rosenbrock23): a reference, no copy
                out.append(stages[i])
                continue
            acc = stages[i] * (a * scale)
            for i, a in rest:
                acc.add_(stages[i], alpha=a * scale)
            out.append(acc)
        return tuple(out)


HERMITE = Interpolant("cubic Hermite", 3)


def interpolate(ip: Interpolant, t0: float, t1: float, y0: Tensor, f0: Tensor, y1: Tensor, f1: Tensor,
                D: Optional[tuple], t: float) -> Tensor:
    """y(t) on the step [t0, t1]: the method's interpolant from the step's D_j, else cubic Hermite."""
    if D and ip.M:
        return stage_eval(ip, t0, t1, y0, f0, y1, D, t)
    return hermite_eval(t0, t1, y0, f0, y1, f1, t)


def stage_eval(ip: Interpolant, t0: float, t1: float, y0: Tensor, f0: Tensor, y1: Tensor, D: tuple,
               t: float) -> Tensor:
    """A stage-based interpolant (explicit RK, Rosenbrock, ESDIRK alike) at t; exact at both ends."""
    h = t1 - t0
    s = (t - t0) / h
    if s == 0.0:
        return y0
    if s == 1.0:
        return y1
    if ip.base == "y1":
        out = y0.mul(1.0 - s)
        out.add_(y1, alpha=s)
    elif ip.base == "f0":
        out = y0.add(f0, alpha=s * h)
    else:
        out = None
    for Dj, row in zip(D, ip.phi):
        w = 0.0
        for c in reversed(row):     # Horner for sum_m c_m s^(m-1), times s below
            w = w * s + c
        if out is None:
            out = y0.add(Dj, alpha=w * s)
        else:
            out.add_(Dj, alpha=w * s)
    return out

