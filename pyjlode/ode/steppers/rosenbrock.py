"""The Rosenbrock stepper in W-transformed form (Rosenbrock23, Rodas4, Rodas5P)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from ..dense import hermite_quad
from ..linalg import Jacobian, factor_w, solve_w, time_derivative
from .base import State, Stepper, StepResult, lincomb, nonzero


@dataclass(frozen=True, slots=True)
class RosenbrockPlan:
    """A Rosenbrock tableau as Python floats (nonzero entries per row).

    ``gC`` and ``gd`` are C and d pre-multiplied by gamma, because the stepper solves
    ``W k_i = gamma dt rhs_i`` with ``W = I - gamma dt J``. ``fsal``: the last stage point is y1
    (Rosenbrock23), so its f evaluation is f(t + dt, y1).
    """

    name: str
    gamma: float
    c: tuple
    gd: tuple
    A: tuple
    gC: tuple
    b: tuple
    b_err: Optional[tuple]
    fsal: bool
    linsolve: str = "dense"


@dataclass(slots=True, eq=False)
class RosenbrockState(State):
    """The Jacobian and ``df/dt`` at the current start point (kept for a retry from it)."""

    jac: Jacobian = field(default_factory=Jacobian)
    J: Optional[Tensor] = None
    T: Optional[Tensor] = None


class Rosenbrock(Stepper):
    """One Rosenbrock step from (t, y) with ``f0 = f(t, y)``.

    Stage i: ``u_i = y + sum_{j<i} A_ij k_j`` and ``W k_i = gamma dt (f(t + c_i dt, u_i)
    + dt d_i df/dt + sum_{j<i} C_ij/dt k_j)``; ``y1 = y + sum b_i k_i``, error
    ``sum (b - b_hat)_i k_i`` (``k_s`` for the stiffly accurate Rodas methods).

    Work per step: one Jacobian and one ``df/dt`` (a forward difference, one f evaluation) at every
    new start point -- Rodas4/5P are not W-methods and lose order with anything but the exact J
    there, and Rosenbrock23 gets the same -- reused only when a rejected attempt is retried from
    the same point; one batched LU of W per attempt; s triangular solves and s - 1 new f
    evaluations, plus f(t + dt, y1) unless the method is FSAL (Rosenbrock23).
    With a quad, the increment is 3-point Gauss-Legendre on the step's cubic Hermite.
    """

    family = "rosenbrock"
    __slots__ = ()

    @staticmethod
    def make_plan(tab) -> RosenbrockPlan:
        g = float(tab.gamma)
        fsal = float(tab.c[-1]) == 1.0 and tab.b[-1] == 0 and \
            all(float(a) == float(b) for a, b in zip(tab.A[-1][:-1], tab.b[:-1]))
        return RosenbrockPlan(
            name=tab.name, gamma=g, c=tuple(float(x) for x in tab.c), gd=tuple(g * float(x) for x in tab.d),
            A=tuple(nonzero(r) for r in tab.A), gC=tuple(nonzero(r, g) for r in tab.C), b=nonzero(tab.b),
            b_err=nonzero(tab.b_err) if tab.b_err is not None else None, fsal=fsal)

    def init(self, problem, t0, y0, f0, q0=None, *, adaptive=True) -> RosenbrockState:
        return RosenbrockState(want_err=adaptive and self.plan.b_err is not None, q1=q0)

    def step(self, problem, t: float, y: Tensor, f0: Tensor, dt: float, state: RosenbrockState, *,
             rejected: bool) -> tuple[StepResult, RosenbrockState]:
        p = self.plan
        state.begin(rejected)
        if not rejected or state.J is None:
            state.J = state.jac(problem, t, y)
            state.T = time_derivative(problem, t, y, f0, dt)
        gdt = p.gamma * dt
        w = factor_w(problem, state.J, gdt, p.linsolve, y)
        c, gd, A, gC, T = p.c, p.gd, p.A, p.gC, state.T
        k: list = []
        fi = ui = f0
        for i in range(len(c)):
            if i > 0:
                ui = lincomb(y, k, A[i])
                fi = problem.f_eval(t + c[i] * dt, ui)
            rhs = fi * gdt
            for j, a in gC[i]:
                rhs.add_(k[j], alpha=a)
            if gd[i] != 0.0:
                rhs.add_(T, alpha=gd[i] * dt * dt)
            k.append(solve_w(problem, w, rhs))
        if p.fsal:
            y1, f1 = ui, fi
        else:
            y1 = lincomb(y, k, p.b)
            f1 = problem.f_eval(t + dt, y1)
        err = lincomb(None, k, p.b_err) if state.want_err else None
        q = hermite_quad(problem, t, dt, y, f0, y1, f1) if problem.has_quad else None
        return StepResult(y1, f1, err, q, True, tuple(k)), state

