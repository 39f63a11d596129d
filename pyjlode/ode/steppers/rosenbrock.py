"""The Rosenbrock stepper in W-transformed form (Rosenbrock23, Rodas4, Rodas5P)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from ..linalg import Jacobian, factor_w, solve_w, time_derivative
from .base import State, Stepper, StepResult, lincomb, nonzero


@dataclass(frozen=True, slots=True)
class RosenbrockPlan:
    """A Rosenbrock tableau as Python floats (nonzero entries per row).

    ``gC`` and ``gd`` are C and d pre-multiplied by gamma, because the stepper solves
    ``W k_i = gamma dt rhs_i`` with ``W = I - gamma dt J``. ``fsal``: the last stage point is y1
    (Rosenbrock23), so its f evaluation is f(t + dt, y1). ``beta``/``beta_err``: the quadrature
    weights ``gamma (I - gamma C)^-T b`` (and of ``b - b_hat``), ``bd``/``bd_err`` their dot with d
    (see ``Rosenbrock._quad``).
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
    beta: tuple = ()
    beta_err: Optional[tuple] = None
    bd: float = 0.0
    bd_err: float = 0.0
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
    With a quad, the increment and its error come from the method's own stages applied to the
    augmented system (``_quad``): the stage quad rates ride on the f evaluations, plus one rate
    evaluation for ∂g/∂t and one G product for the increment (and one for its error).
    """

    family = "rosenbrock"
    __slots__ = ()

    @staticmethod
    def make_plan(tab) -> RosenbrockPlan:
        g = float(tab.gamma)
        fsal = float(tab.c[-1]) == 1.0 and tab.b[-1] == 0 and \
            all(float(a) == float(b) for a, b in zip(tab.A[-1][:-1], tab.b[:-1]))
        beta = _quad_weights(g, tab.C, tab.b)
        beta_err = _quad_weights(g, tab.C, tab.b_err) if tab.b_err is not None else None
        d = [float(x) for x in tab.d]
        return RosenbrockPlan(
            name=tab.name, gamma=g, c=tuple(float(x) for x in tab.c), gd=tuple(g * x for x in d),
            A=tuple(nonzero(r) for r in tab.A), gC=tuple(nonzero(r, g) for r in tab.C), b=nonzero(tab.b),
            b_err=nonzero(tab.b_err) if tab.b_err is not None else None, fsal=fsal,
            beta=nonzero(beta), beta_err=nonzero(beta_err) if beta_err is not None else None,
            bd=sum(x * y for x, y in zip(beta, d)),
            bd_err=sum(x * y for x, y in zip(beta_err, d)) if beta_err is not None else 0.0)

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
        qs = [state.start_rates(problem, t, y)] if problem.has_quad else None
        for i in range(len(c)):
            if i > 0:
                ui = lincomb(y, k, A[i])
                if qs is None:
                    fi = problem.f_eval(t + c[i] * dt, ui)
                else:
                    fi, qi = problem.fq_eval(t + c[i] * dt, ui)
                    qs.append(qi)
            rhs = fi * gdt
            for j, a in gC[i]:
                rhs.add_(k[j], alpha=a)
            if gd[i] != 0.0:
                rhs.add_(T, alpha=gd[i] * dt * dt)
            k.append(solve_w(problem, w, rhs))
        if p.fsal:
            y1, f1 = ui, fi
            if qs is not None:
                state.q1 = qs[-1]
        else:
            y1 = lincomb(y, k, p.b)
            if qs is None:
                f1 = problem.f_eval(t + dt, y1)
            else:
                f1, state.q1 = problem.fq_eval(t + dt, y1)
        err = lincomb(None, k, p.b_err) if state.want_err else None
        q = q_err = None
        if qs is not None:
            q, q_err = self._quad(problem, t, y, dt, k, qs, state)
        return StepResult(y1, f1, err, q, True, tuple(k), q_err=q_err), state

    def _quad(self, problem, t: float, y: Tensor, dt: float, k: list, qs: list, state) -> tuple:
        """The quad increment and its error from the method's own stages on the augmented system.

        For x = [y, Q] with Q' = g(t, y), the Jacobian is [[J, 0], [G, 0]] (G = ∂g/∂y at the Jacobian
        point), so W = I - γdt J_aug is block lower triangular and Q's stages are explicit:
        ``k_Q,i = γdt (g_i + Σ_j C_ij/dt k_Q,j + dt d_i ∂g/∂t) + γdt G k_i``. Summed with b, the C
        recursion folds into the weights beta = γ (I - γC)^-T b, leaving one G product per sum:
        ``Σ b_i k_Q,i = dt Σ_j beta_j g_j + dt² (beta·d) ∂g/∂t + dt G(Σ_j beta_j k_j)``.
        """
        p = self.plan
        xs = list(qs)
        if p.bd != 0.0 or p.bd_err != 0.0:   # ∂g/∂t by the same forward difference as the state's
            delta = _time_step(t, y, dt)
            xs.append(tuple(lincomb(None, [a, b], ((0, 1.0), (1, -1.0)), 1.0 / delta)
                            for a, b in zip(problem.q_eval(t + delta, y), qs[0])))
        want_err = state.quad_err_wanted(problem) and p.beta_err is not None
        out = []
        for beta, bd in ((p.beta, p.bd), (p.beta_err, p.bd_err))[:1 + want_err]:
            xs_m = xs + [problem.q_jvp(t, y, lincomb(None, k, beta))]
            coeffs = beta + (((len(qs), dt * bd),) if bd != 0.0 else ()) + ((len(xs), 1.0),)
            out.append(tuple(lincomb(None, [x[m] for x in xs_m], coeffs, dt) for m in range(len(qs[0]))))
        return out[0], (out[1] if want_err else None)


def _quad_weights(gamma: float, C, b) -> list:
    """beta = γ x with (I - γC)ᵀ x = b (C strictly lower triangular): back substitution."""
    s = len(b)
    x = [0.0] * s
    for j in range(s - 1, -1, -1):
        x[j] = float(b[j]) + gamma * sum(float(C[i][j]) * x[i] for i in range(j + 1, s))
    return [gamma * v for v in x]


def _time_step(t: float, y: Tensor, dt: float) -> float:
    """The forward-difference step of ``linalg.time_derivative`` (into the step's interval)."""
    delta = math.copysign(math.sqrt(torch.finfo(y.dtype).eps) * max(1.0, abs(t)), dt)
    return (t + delta) - t

