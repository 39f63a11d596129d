"""Frozen, self-checking coefficient tables for the Runge-Kutta families.

Coefficients are stored exactly as their source prints them (``Fraction`` where
the paper gives rationals, published decimals otherwise). The steppers turn a
tableau into the Python floats they compute with once, in their own frozen plan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence, Union

Number = Union[float, int, Fraction]

# Published decimals carry ~16 significant digits; row sums of such entries are
# exact only up to round-off proportional to the entries' magnitude.
_REL_TOL = 1e-12


def _tuple1(x: Sequence[Number] | None) -> tuple | None:
    return None if x is None else tuple(x)


def _tuple2(x: Sequence[Sequence[Number]] | None) -> tuple | None:
    return None if x is None else tuple(tuple(r) for r in x)


def _close(value: Number, target: Number, scale: float = 1.0) -> bool:
    """Exact for rationals, else within round-off of the magnitudes involved."""
    if all(isinstance(v, (int, Fraction)) for v in (value, target)):
        return value == target
    return abs(float(value) - float(target)) <= _REL_TOL * max(1.0, scale)


def _check_sum(what: str, name: str, row: Sequence[Number], target: Number) -> None:
    total = sum(row, Fraction(0)) if all(isinstance(v, (int, Fraction)) for v in row) \
        else math.fsum(float(v) for v in row)
    if not _close(total, target, sum(abs(float(v)) for v in row)):
        raise ValueError(f"tableau {name}: {what} sums to {float(total)!r}, expected {float(target)!r}")


@dataclass(frozen=True, kw_only=True)
class ButcherTableau:
    """Butcher tableau of an explicit or ESDIRK Runge-Kutta method.

    Layout (s stages, A lower triangular)::

        c_0 | 0
        c_1 | A_10  A_11
        ... | ...          ...
        c_s | A_s0  ...    A_ss
        ----+-------------------
            | b_0   ...    b_s       (solution, order p)
            | bh_0  ...    bh_s      (embedded b_hat, order embedded_order)

    Explicit methods have a zero diagonal. ESDIRK methods have ``A[0][0] == 0``
    (explicit first stage) and ``A[i][i] == gamma`` for i >= 1.

    Attributes:
        name: solver name (Julia spelling).
        A, b, c, b_hat: coefficients as printed by the source.
        order: convergence order of ``b``.
        embedded_order: order of ``b_hat`` (None without an embedded pair).
        gamma: ESDIRK diagonal (None for explicit methods).
        predictor: optional stage predictors (ESDIRK), rows of coefficients
            whose meaning is defined by the step function that uses them.
        filtered_estimate: ESDIRK only: the error estimate is Shampine's filtered
            ``W^-1 sum (b - b_hat)_i z_i``, for pairs whose embedded stability function is
            unbounded at infinity (TRBDF2); otherwise the plain difference ``sum (b - b_hat)_i z_i``.
        source: paper and code reference the numbers were taken from.
        b_err: derived ``b - b_hat`` (None without b_hat).
        fsal: derived; the last stage is evaluated at the new solution
            (``c[-1] == 1`` and the last row of A equals b), so f(t+dt, y1) is free.
        kind: derived; ``"explicit"`` or ``"esdirk"``.
    """

    name: str
    A: tuple
    b: tuple
    c: tuple
    b_hat: tuple | None = None
    order: int
    embedded_order: int | None = None
    gamma: Number | None = None
    predictor: Any = None
    filtered_estimate: bool = False
    source: str = ""
    b_err: tuple | None = field(init=False, default=None)
    fsal: bool = field(init=False, default=False)
    kind: str = field(init=False, default="explicit")

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "A", _tuple2(self.A))
        set_(self, "b", _tuple1(self.b))
        set_(self, "c", _tuple1(self.c))
        set_(self, "b_hat", _tuple1(self.b_hat))
        s, name = len(self.c), self.name
        if len(self.A) != s or any(len(r) != s for r in self.A) or len(self.b) != s:
            raise ValueError(f"tableau {name}: A must be {s}x{s} and b of length {s}")
        if self.b_hat is not None and len(self.b_hat) != s:
            raise ValueError(f"tableau {name}: b_hat must have length {s}")
        if any(self.A[i][j] != 0 for i in range(s) for j in range(i + 1, s)):
            raise ValueError(f"tableau {name}: A must be lower triangular")
        diag = [self.A[i][i] for i in range(s)]
        if all(d == 0 for d in diag):
            kind = "explicit"
            if self.gamma is not None or self.filtered_estimate:
                raise ValueError(f"tableau {name}: gamma or filtered_estimate given but the diagonal of A is zero")
        else:
            kind = "esdirk"
            if diag[0] != 0 or self.gamma is None or any(not _close(d, self.gamma) for d in diag[1:]):
                raise ValueError(f"tableau {name}: ESDIRK needs A[0][0] == 0 and A[i][i] == gamma for i >= 1")
        for i, row in enumerate(self.A):
            _check_sum(f"row {i} of A", name, row, self.c[i])
        _check_sum("b", name, self.b, 1)
        if self.b_hat is not None:
            _check_sum("b_hat", name, self.b_hat, 1)
            set_(self, "b_err", tuple(bi - bh for bi, bh in zip(self.b, self.b_hat)))
        if (self.b_hat is None) != (self.embedded_order is None):
            raise ValueError(f"tableau {name}: give b_hat and embedded_order together")
        fsal = s > 1 and self.c[-1] == 1 and all(_close(a, bi) for a, bi in zip(self.A[-1], self.b))
        set_(self, "fsal", bool(fsal))
        set_(self, "kind", kind)

    @property
    def stages(self) -> int:
        return len(self.c)


@dataclass(frozen=True, kw_only=True)
class RosenbrockTableau:
    """Rosenbrock method in the W-transformed form of OrdinaryDiffEq's ``RodasTableau``.

    With W = I - gamma dt J (the engine's one convention), for stage i = 1..s::

        u_i   = u_n + sum_{j<i} A[i][j] k_j
        rhs_i = f(t + c_i dt, u_i) + dt d_i df/dt + sum_{j<i} (C[i][j]/dt) k_j
        W k_i = gamma dt rhs_i

    (OrdinaryDiffEq solves ``(J - I/(gamma dt)) k_i = -rhs_i`` for the same k_i), then
    ``u_{n+1} = u_n + sum b_i k_i`` and ``err = sum (b - b_hat)_i k_i``. The transformed A and C
    are not classical Butcher coefficients, so only the shapes, strict lower triangularity and
    ``c[0] == 0`` can be checked.

    Attributes:
        name, A, C, gamma, c, d, b, b_hat, order, embedded_order, source: as above.
        b_err: derived ``b - b_hat``.
        kind: ``"rosenbrock"``.
    """

    name: str
    A: tuple
    C: tuple
    gamma: Number
    c: tuple
    d: tuple
    b: tuple
    b_hat: tuple | None = None
    order: int
    embedded_order: int | None = None
    source: str = ""
    b_err: tuple | None = field(init=False, default=None)
    kind: str = field(init=False, default="rosenbrock")
    fsal: bool = field(init=False, default=False)

    def __post_init__(self):
        set_ = object.__setattr__
        for n in ("A", "C"):
            set_(self, n, _tuple2(getattr(self, n)))
        for n in ("c", "d", "b", "b_hat"):
            set_(self, n, _tuple1(getattr(self, n)))
        s, name = len(self.c), self.name
        if any(len(m) != s or any(len(r) != s for r in m) for m in (self.A, self.C)):
            raise ValueError(f"tableau {name}: A and C must be {s}x{s}")
        if len(self.d) != s or len(self.b) != s or (self.b_hat is not None and len(self.b_hat) != s):
            raise ValueError(f"tableau {name}: d, b and b_hat must have length {s}")
        for m, label in ((self.A, "A"), (self.C, "C")):
            if any(m[i][j] != 0 for i in range(s) for j in range(i, s)):
                raise ValueError(f"tableau {name}: {label} must be strictly lower triangular")
        if self.c[0] != 0 or not float(self.gamma) > 0:
            raise ValueError(f"tableau {name}: need c[0] == 0 and gamma > 0")
        if (self.b_hat is None) != (self.embedded_order is None):
            raise ValueError(f"tableau {name}: give b_hat and embedded_order together")
        if self.b_hat is not None:
            set_(self, "b_err", tuple(bi - bh for bi, bh in zip(self.b, self.b_hat)))

    @property
    def stages(self) -> int:
        return len(self.c)
