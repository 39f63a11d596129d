"""What every stepper shares: the step result, the state base class, and the stage sums.

A stepper is one object per method, built once from its tableau. It holds a frozen *plan*
(the tableau's coefficients as Python floats, zero entries dropped) and exposes::

    state = stepper.init(problem, t0, y0, f0, q0=None, adaptive=True)
    result, state = stepper.step(problem, t, y, f0, dt, state, rejected=False)

``step`` attempts one step from ``(t, y)`` with ``f0 = f(t, y)``. ``rejected=True`` says the
previous attempt was rejected, so this one starts from the same ``(t, y)`` (with a smaller dt);
``rejected=False`` says the previous attempt (if any) was accepted and ``(t, y)`` is its end
point. That flag is the whole protocol between the loop and a stepper: no shared dicts, no
identity checks. ``step`` may update the state in place and return the same object.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Optional

from torch import Tensor


class StepResult(NamedTuple):
    """One attempted step from t to t + dt.

    Attributes:
        y1: solution at t + dt.
        f1: f(t + dt, y1), the next step's f0 (FSAL or computed).
        err: local error estimate shaped like y; None without an embedded pair or when the
            solve is not adaptive.
        q: quadrature increment over the step, or None when the problem has no quad.
        q_err: embedded error estimate of ``q`` (one entry per quad tensor), or None unless the
            problem asks for it (``problem.quad_control``) and the step computes ``err``.
        ok: False when an implicit solve failed; the loop then halves dt and retries.
        nonfinite: the failed implicit solve met NaN or inf (in f, the Jacobian or an iterate); the
            loop then shrinks dt hard and, if that does not cure it, names the cause.
        stages: what the family's own dense output is built from, computed anyway: the stage
            derivatives k_i (explicit RK, k_0 = f0), the W-transformed stage vectors k_i
            (Rosenbrock, as OrdinaryDiffEq's Rodas interpolant uses them), or the stage
            variables z_i = dt k_i (ESDIRK, z_0 = dt f0). Empty when ``ok`` is False.
    """

    y1: Tensor
    f1: Tensor
    err: Optional[Tensor]
    q: Optional[tuple] = None
    ok: bool = True
    stages: tuple = ()
    nonfinite: bool = False
    q_err: Optional[tuple] = None


@dataclass(slots=True, eq=False)
class State:
    """What every family carries from one attempt to the next.

    Attributes:
        want_err: compute the error estimate (False for fixed-step solves).
        q0: quadrature rates at the current point (t, y), when known.
        q1: quadrature rates at the last attempt's y1 (at t0 before the first step); they
            become ``q0`` if that attempt is accepted.
    """

    want_err: bool = True
    q0: Optional[tuple] = None
    q1: Optional[tuple] = None

    def begin(self, rejected: bool) -> None:
        """Called first by every step: keep the last attempt's end-point rates if it was accepted."""
        if not rejected:
            self.q0 = self.q1
        self.q1 = None

    def quad_err_wanted(self, problem) -> bool:
        """Whether this attempt estimates its quad increment's error (see ``Problem.quad_control``)."""
        return self.want_err and problem.quad_control

    def start_rates(self, problem, t: float, y: Tensor) -> tuple:
        """Quad rates at the current point (t, y), evaluated at most once per point."""
        if self.q0 is None:
            self.q0 = problem.q_eval(t, y)
        return self.q0


class Stepper:
    """Base class of the family steppers (see the module docstring for the protocol).

    Attributes:
        family: "explicit", "esdirk" or "rosenbrock".
        qsteady_max: upper end of the PI controller's dead-band ``[1, qsteady_max]``, in which
            dt is kept unchanged (ESDIRK methods use 1.2 so a reused W stays exact).
        plan: the frozen per-tableau constants.
    """

    family: ClassVar[str] = ""
    qsteady_max: ClassVar[float] = 1.0

    __slots__ = ("plan",)

    def __init__(self, tableau):
        self.plan = self.make_plan(tableau)

    @staticmethod
    def make_plan(tableau):
        raise NotImplementedError

    def init(self, problem, t0: float, y0: Tensor, f0: Tensor, q0: Optional[tuple] = None, *,
             adaptive: bool = True) -> State:
        """A fresh state for a solve starting at (t0, y0); ``q0``: quad rates there, if known."""
        raise NotImplementedError

    def step(self, problem, t: float, y: Tensor, f0: Tensor, dt: float, state: State, *,
             rejected: bool) -> tuple[StepResult, State]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plan.name})"


def nonzero(row, scale: float = 1.0) -> tuple:
    """``((j, scale * a_j), ...)`` for the nonzero entries of a coefficient row, as floats."""
    return tuple((j, scale * float(a)) for j, a in enumerate(row) if a != 0)


def lincomb(base: Optional[Tensor], xs: list, coeffs: tuple, scale: float = 1.0):
    """``base + scale * sum_j a_j xs[j]`` as one out-of-place op plus in-place adds.

    Returns a fresh tensor nobody has saved (safe under autograd), or ``base`` itself when
    ``coeffs`` is empty. Python-float coefficients serve as ``alpha`` arguments: no coefficient
    tensors and no host syncs. Also sums quadrature rates kept as ``OuterSum`` factors.
    """
    if not coeffs:
        return base
    j, a = coeffs[0]
    acc = xs[j] * (scale * a) if base is None else base.add(xs[j], alpha=scale * a)
    for j, a in coeffs[1:]:
        acc.add_(xs[j], alpha=scale * a)
    return acc
