"""The explicit Runge-Kutta stepper (Euler, RK4, Tsit5, DP5), driven by a ButcherTableau."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor

from .base import State, Stepper, StepResult, lincomb, nonzero


@dataclass(frozen=True, slots=True)
class ExplicitPlan:
    """An explicit tableau as Python floats: nonzero entries per row of A, b, b - b_hat, c."""

    name: str
    rows: tuple
    b: tuple
    b_err: Optional[tuple]
    c: tuple
    fsal: bool


class ExplicitRK(Stepper):
    """Stage i evaluates ``k_i = f(t + c_i dt, y + dt sum_j A_ij k_j)``; ``y1 = y + dt sum b_i k_i``,
    error ``dt sum (b - b_hat)_i k_i``.

    FSAL tableaus (Tsit5, DP5) get f(t + dt, y1) from their last stage; others pay one evaluation
    for it, since the loop always needs it (next f0, dense output). With a quad, stage rates come
    from ``problem.fq_eval`` and the increment is ``dt sum b_i q_i``, its error ``dt sum (b - b_hat)_i q_i``
    (when ``problem.quad_control``); the stage-0 rates are the previous step's last ones. The state
    holds nothing else.
    """

    family = "explicit"
    __slots__ = ()

    @staticmethod
    def make_plan(tab) -> ExplicitPlan:
        return ExplicitPlan(name=tab.name, rows=tuple(nonzero(r) for r in tab.A), b=nonzero(tab.b),
                            b_err=nonzero(tab.b_err) if tab.b_err is not None else None,
                            c=tuple(float(x) for x in tab.c), fsal=tab.fsal)

    def init(self, problem, t0, y0, f0, q0=None, *, adaptive=True) -> State:
        return State(want_err=adaptive and self.plan.b_err is not None, q1=q0)

    def step(self, problem, t: float, y: Tensor, f0: Tensor, dt: float, state: State, *,
             rejected: bool) -> tuple[StepResult, State]:
        p = self.plan
        rows, c = p.rows, p.c
        want_q = problem.has_quad
        state.begin(rejected)
        k = [f0]
        qs = [state.start_rates(problem, t, y)] if want_q else None
        yi = y
        for i in range(1, len(c)):
            yi = lincomb(y, k, rows[i], dt)
            if want_q:
                ki, qi = problem.fq_eval(t + c[i] * dt, yi)
                qs.append(qi)
            else:
                ki = problem.f_eval(t + c[i] * dt, yi)
            k.append(ki)
        if p.fsal:
            y1, f1 = yi, k[-1]
            q1 = qs[-1] if want_q else None
        else:
            y1 = lincomb(y, k, p.b, dt)
            if want_q:
                f1, q1 = problem.fq_eval(t + dt, y1)
            else:
                f1 = problem.f_eval(t + dt, y1)
        q = q_err = None
        if want_q:
            state.q1 = q1
            q = tuple(lincomb(None, [qi[m] for qi in qs], p.b, dt) for m in range(len(qs[0])))
            if state.quad_err_wanted(problem):
                q_err = tuple(lincomb(None, [qi[m] for qi in qs], p.b_err, dt) for m in range(len(qs[0])))
        err = lincomb(None, k, p.b_err, dt) if state.want_err else None
        return StepResult(y1, f1, err, q, True, tuple(k), q_err=q_err), state
