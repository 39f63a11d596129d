"""The ESDIRK stepper (TRBDF2, KenCarp4, Kvaerno5): simplified Newton with J and W reuse.

Stage i (i >= 1) solves ``z_i = dt f(t + c_i dt, tmp_i + gamma z_i)`` with
``tmp_i = y + sum_{j<i} A_ij z_j`` (OrdinaryDiffEq's convention, z = dt k), by the Newton iteration
of :mod:`.newton` with the LU of ``W = I - gamma dt J``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from ..krylov import JacobianOperator
from ..linalg import Jacobian, WFactor, factor_w, solve_w, w_is_stale
from .base import State, Stepper, StepResult, lincomb, nonzero
from .newton import solve_stage

FAST_THETA = 0.2             # a step whose Newton rates all stayed at or below this keeps J
W_CUTOFF = 0.2               # refactorise W when |gdt_W / gdt - 1| exceeds this (new_W_dt_cutoff)


@dataclass(frozen=True, slots=True)
class ESDIRKPlan:
    """An ESDIRK tableau as Python floats: gamma, c, the rows of A below the diagonal, the
    predictor rows, b and b - b_hat (nonzero entries only); ``filtered``: the error estimate
    is solved with W (see the stepper)."""

    name: str
    gamma: float
    c: tuple
    A: tuple
    pred: tuple
    b: tuple
    b_err: tuple
    filtered: bool
    linsolve: str = "dense"


@dataclass(slots=True, eq=False)
class ESDIRKState(State):
    """Jacobian, LU and Newton memory carried between attempts.

    Attributes:
        jac: the Jacobian evaluator (remembers an autograd-loop fallback).
        J: the last Jacobian; ``j_current``: it was evaluated at this step's start point.
        w: LU of ``I - gdt J`` and its gdt.
        theta: Newton rate carried to the next stage solve (1 after a rejection or failure).
        fast: every Newton rate of the last step was at most FAST_THETA, so J is kept.
        iters, rate_max: Newton iterations and largest measured rate of the current attempt.
        nonfinite: the last stage solve that failed met NaN or inf.
    """

    jac: Jacobian = field(default_factory=Jacobian)
    J: Optional[Tensor] = None
    j_current: bool = False
    w: Optional[WFactor] = None
    theta: float = 1.0
    fast: bool = False
    iters: int = 0
    rate_max: float = 0.0
    nonfinite: bool = False


class ESDIRK(Stepper):
    """One ESDIRK step; the methods are stiffly accurate, so ``y1`` is the last stage value and
    ``f1 = z_s / dt`` its derivative, free.

    Matrices: J is evaluated at the step's start point when none exists, after a rejected attempt,
    or when the last step's Newton was not fast; W is refactorised with a new J, after a rejected
    attempt, or when gamma*dt moved by more than W_CUTOFF. A stage whose Newton fails gets a fresh J
    (if J was stale), then a W for the exact gamma*dt (if it was rescaled), and otherwise the step
    fails (``ok=False``; the loop halves dt).

    Error estimate: ``sum (b - b_hat)_i z_i``, filtered through the step's own LU as
    ``W^-1 sum (b - b_hat)_i z_i`` (Shampine; not OrdinaryDiffEq's gamma*dt-scaled variant) only
    for tableaus whose embedded formula is unbounded at infinity (TRBDF2). With a stale J,
    ``W^-1 = (I - M) W_true^-1`` where M is the Newton contraction whose rate every stage measured,
    so the filter is off by at most about ``1 / (1 - rate)``; a step with a rate above FAST_THETA
    refreshes J for the next.
    With a quad, the increment is ``dt sum b_i q(t + c_i dt, Y_i)`` at the converged stage values, its
    error ``dt sum (b - b_hat)_i q_i`` (unfiltered: the quad has no Jacobian block of its own).
    """

    family = "esdirk"
    qsteady_max = 1.2
    __slots__ = ()

    @staticmethod
    def make_plan(tab) -> ESDIRKPlan:
        s = tab.stages
        return ESDIRKPlan(name=tab.name, gamma=float(tab.gamma), c=tuple(float(x) for x in tab.c),
                          A=tuple(nonzero(tab.A[i][:i]) for i in range(s)),
                          pred=tuple(nonzero(r) for r in tab.predictor), b=nonzero(tab.b),
                          b_err=nonzero(tab.b_err), filtered=tab.filtered_estimate)

    def init(self, problem, t0, y0, f0, q0=None, *, adaptive=True) -> ESDIRKState:
        return ESDIRKState(want_err=adaptive, q1=q0)

    def step(self, problem, t: float, y: Tensor, f0: Tensor, dt: float, state: ESDIRKState, *,
             rejected: bool) -> tuple[StepResult, ESDIRKState]:
        p = self.plan
        g, A, c, pred = p.gamma, p.A, p.c, p.pred
        state.begin(rejected)
        if rejected:
            state.theta = 1.0          # OrdinaryDiffEq resets the carried rate after a rejection
        else:
            state.j_current = False    # a new start point
        self._matrices(problem, t, y, g * dt, state, rejected)
        state.iters, state.rate_max = 0, 0.0
        z, Ys = [f0 * dt], [y]
        for i in range(1, len(c)):
            tmp = lincomb(y, z, A[i])
            zi = self._stage(problem, t, y, t + c[i] * dt, tmp, lincomb(None, z, pred[i]), dt, state)
            if zi is None:
                problem.stats.nnewton += state.iters
                state.fast = False
                return StepResult(y, f0, None, None, False, nonfinite=state.nonfinite), state
            z.append(zi)
            Ys.append(tmp.add(zi, alpha=g))
        problem.stats.nnewton += state.iters
        state.fast = state.rate_max <= FAST_THETA
        err = self._estimate(problem, z, state) if state.want_err else None
        q, q_err = self._quad(problem, t, dt, Ys, state) if problem.has_quad else (None, None)
        return StepResult(Ys[-1], z[-1] / dt, err, q, True, tuple(z), q_err=q_err), state

    def _estimate(self, problem, z: list, state: ESDIRKState) -> Tensor:
        err = lincomb(None, z, self.plan.b_err)
        return solve_w(problem, state.w, err) if self.plan.filtered else err

    def _matrices(self, problem, t: float, y: Tensor, gdt: float, state: ESDIRKState, rejected: bool) -> None:
        """J and the LU of W at the start of an attempt, under the reuse policy (a Krylov W costs
        nothing to rebuild, so it always has this attempt's gamma*dt)."""
        new_j = not state.j_current and (state.J is None or not state.fast or rejected)
        if new_j:
            state.J, state.j_current = state.jac(problem, t, y), True
        krylov = self.plan.linsolve == "krylov"
        if new_j or rejected or krylov or w_is_stale(state.w, gdt, W_CUTOFF):
            state.w = factor_w(problem, state.J, gdt, self.plan.linsolve, y)

    def _stage(self, problem, t, y, ti, tmp, guess, dt, state: ESDIRKState) -> Optional[Tensor]:
        """One stage's Newton solve with the recovery ladder: fresh J, then exact W, then give up."""
        gdt = self.plan.gamma * dt
        if self.plan.linsolve == "krylov" and isinstance(state.J, JacobianOperator):
            # a matrix-free J costs about one f: Newton takes it at the stage's predictor, not at the
            # step start (one iteration converges a linear f, such as the adjoint's)
            state.J = state.jac(problem, ti, tmp.add(guess, alpha=self.plan.gamma))
            state.w = factor_w(problem, state.J, gdt, "krylov", y)
        while True:
            state.nonfinite = False
            zi = solve_stage(problem, ti, tmp, guess, y, dt, self.plan.gamma, state)
            if zi is not None:
                return zi
            problem.stats.nnewton_fail += 1
            state.theta = 1.0
            if not state.j_current:
                state.J, state.j_current = state.jac(problem, t, y), True
                state.w = factor_w(problem, state.J, gdt, self.plan.linsolve, y)
            elif state.w.gdt != gdt:
                state.w = factor_w(problem, state.J, gdt, self.plan.linsolve, y)
            else:
                return None

    def _quad(self, problem, t: float, dt: float, Ys: list, state: ESDIRKState) -> tuple:
        """``(dt sum_i b_i q_i, dt sum_i (b - b_hat)_i q_i or None)``, ``q_i = q(t + c_i dt, Y_i)``.

        Exactly the method applied to the augmented system [a, θ̄]: θ̄ feeds nothing back, so its
        stage equations are explicit in the converged Y_i. Stage 0 is the start point, the last y1.
        """
        p = self.plan
        want_err = state.quad_err_wanted(problem)
        used = {i for i, _ in p.b} | ({i for i, _ in p.b_err} if want_err else set()) | {len(p.c) - 1}
        rates = [None] * len(p.c)
        for i in sorted(used):
            rates[i] = (state.start_rates(problem, t, Ys[0]) if i == 0
                        else problem.q_eval(t + p.c[i] * dt, Ys[i]))
        state.q1 = rates[-1]
        per = [[r[m] if r is not None else None for r in rates] for m in range(len(rates[-1]))]
        q = tuple(lincomb(None, rs, p.b, dt) for rs in per)
        return q, (tuple(lincomb(None, rs, p.b_err, dt) for rs in per) if want_err else None)
