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
        dense: the method's own dense output (None: the loop's cubic Hermite).
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
    dense: "DenseOutput | None" = None
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
        if self.dense is not None:
            self.dense.check(name, self.b, order_one=True)

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
        name, A, C, gamma, c, d, b, b_hat, order, embedded_order, dense, source: as above.
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
    dense: "DenseOutput | None" = None
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
        if self.dense is not None:   # transformed stages: only theta = 1 can be checked
            self.dense.check(name, self.b, order_one=False)

    @property
    def stages(self) -> int:
        return len(self.c)


@dataclass(frozen=True, kw_only=True)
class DenseOutput:
    """A continuous extension ``y(t + theta dt) = y + sum_i b_i(theta) K_i`` of one step.

    ``K_i`` are the stage quantities the stepper returns scaled to increments: ``dt k_i`` for explicit
    and ESDIRK stages (``z_i`` already is), the W-transformed ``k_i`` as they are for Rosenbrock.
    ``b_i(theta) = sum_m P[i][m] theta^(m+1)``; ``b_i(1) = b_i`` makes it reproduce y1 (checked by the
    tableau). The builders below turn each paper's published form into P.

    Attributes:
        name: the interpolant, as its source names it.
        P: per stage, the coefficients of theta^1, theta^2, ... (rows padded to one length).
        order: its order (the local error at fixed theta is O(dt^(order+1))).
        source: paper and code reference.
        H: the Rodas form's H rows (``from_rodas``), kept: a step then stores only ``h_j``.
    """

    name: str
    P: tuple
    order: int
    source: str = ""
    H: tuple | None = None

    def __post_init__(self):
        width = max(len(r) for r in self.P)
        object.__setattr__(self, "P", tuple(tuple(r) + (0,) * (width - len(r)) for r in self.P))

    def check(self, name: str, b: tuple, order_one: bool) -> None:
        """b_i(1) == b_i for every stage; ``order_one``: also sum_i b_i(theta) == theta for all theta.

        In floats: published rational dense coefficients (Kennedy & Carpenter's) are approximations.
        """
        if len(self.P) != len(b):
            raise ValueError(f"tableau {name}: dense output needs {len(b)} stage rows, got {len(self.P)}")
        P = [[float(v) for v in row] for row in self.P]
        for i, (row, bi) in enumerate(zip(P, b)):
            _check_sum(f"dense output row {i} at theta = 1", name, row, float(bi))
        if order_one:
            for m, column in enumerate(zip(*P)):
                _check_sum(f"dense output theta^{m + 1} column", name, column, 1.0 if m == 0 else 0.0)

    @staticmethod
    def from_dopri(b: Sequence[Number], d: Sequence[Number], **kw) -> "DenseOutput":
        """Hairer's DOPRI5 form (Solving ODEs I, II.6): with s = theta, for the 7 FSAL stages,
        ``b_i(s) = s b_i + s(1-s)(e_1 - b)_i + s^2(1-s)(2b - e_1 - e_7)_i + s^2(1-s)^2 d_i``."""
        rows = []
        for i, (bi, di) in enumerate(zip(b, d)):
            e1, e7 = int(i == 0), int(i == len(b) - 1)
            u, v = e1 - bi, 2 * bi - e1 - e7    # s(1-s) u + s^2(1-s) v + s^2 (1-s)^2 d, expanded
            rows.append((bi + u, -u + v + di, -v - 2 * di, di))
        return DenseOutput(P=tuple(rows), **kw)

    @staticmethod
    def from_rodas(b: Sequence[Number], H: Sequence[Sequence[Number]], **kw) -> "DenseOutput":
        """OrdinaryDiffEq's Rodas form: ``y(s) = (1-s) y0 + s (y1 + (1-s)(h_1 + s h_2 + s^2 h_3 ...))``
        with ``h_j = sum_i H[j][i] k_i``, i.e. ``b_i(s) = s b_i + s(1-s) sum_j H[j][i] s^(j-1)``."""
        rows = []
        for i, bi in enumerate(b):
            h = [row[i] for row in H]
            rows.append((bi + h[0], *(h[j] - h[j - 1] for j in range(1, len(h))), -h[-1]))
        return DenseOutput(P=tuple(rows), H=_tuple2(H), **kw)
