"""The Rosenbrock step in W-transformed form (Rosenbrock23, Rodas4, Rodas5P)."""
from __future__ import annotations

from torch import Tensor

from ..dense import hermite_quad
from ..linalg import factor_w, jacobian, solve_w, time_derivative
from ..problem import StepResult


def _plan(tab) -> tuple:
    """Per-tableau constants as Python floats (scalar ``alpha`` arguments), built once.

    Rows keep only nonzero entries. ``C`` is pre-multiplied by gamma because the stepper
    solves ``W k_i = gamma dt rhs_i`` (``W = I - gamma dt J``) instead of OrdinaryDiffEq's
    ``(J - I/(gamma dt)) k_i = -rhs_i``. ``fsal``: the last stage point is y1 (Rosenbrock23),
    so its f evaluation is f(t + dt, y1).
    """
    plan = tab._cache.get("ros_plan")
    if plan is None:
        g = float(tab.gamma)

        def nz(row, scale=1.0):
            return tuple((j, scale * float(a)) for j, a in enumerate(row) if a != 0)

        s = len(tab.c)
        fsal = float(tab.c[-1]) == 1.0 and tab.b[-1] == 0 and \
            all(float(a) == float(b) for a, b in zip(tab.A[-1][:-1], tab.b[:-1]))
        plan = dict(
            g=g, s=s, c=tuple(float(x) for x in tab.c), d=tuple(g * float(x) for x in tab.d),
            A=tuple(nz(r) for r in tab.A), gC=tuple(nz(r, g) for r in tab.C),
            b=nz(tab.b), b_err=nz(tab.b_err) if tab.b_err is not None else None, fsal=fsal)
        tab._cache["ros_plan"] = plan
    return plan


def _lincomb(base: Tensor | None, k: list, coeffs: tuple) -> Tensor:
    """``base + sum_j a_j k_j`` (a fresh tensor; ``base`` is not modified)."""
    if not coeffs:
        return base
    j, a = coeffs[0]
    acc = k[j] * a if base is None else base.add(k[j], alpha=a)
    for j, a in coeffs[1:]:
        acc.add_(k[j], alpha=a)
    return acc


def _jacobian_and_dt(problem, t, y, f0, dt, cache):
    """J and df/dt at (t, y): fresh each step, reused only when retrying from the same point."""
    if cache.get("J_y") is not y or cache.get("J_t") != t:
        cache["J"] = jacobian(problem, t, y, cache)
        cache["T"] = time_derivative(problem, t, y, f0, dt)
        cache["J_t"], cache["J_y"] = t, y
    return cache["J"], cache["T"]


def rosenbrock_step(problem, method, t: float, y: Tensor, f0: Tensor, dt: float,
                    cache: dict) -> StepResult:
    """One Rosenbrock step from (t, y) with ``f0 = f(t, y)``.

    Work per step: one Jacobian (per-row, ``linalg.jacobian``) and one ``df/dt`` (a forward
    difference, one f evaluation; skipped when ``problem.autonomous``) -- both reused when a
    rejected step is retried from the same point -- one batched LU of ``W = I - gamma dt J``,
    s triangular solves and s - 1 new f evaluations, plus f(t + dt, y1) unless the method is
    FSAL (Rosenbrock23). Rodas4/5P are not W-methods: they need this exact, fresh J. Error
    estimate: ``sum (b - b_hat)_i k_i`` (``k_s`` for the stiffly accurate Rodas methods).
    With a quad, the increment is 3-point Gauss-Legendre on the step's cubic Hermite.
    """
    p = _plan(method.tableau)
    gdt = p["g"] * dt
    J, T = _jacobian_and_dt(problem, t, y, f0, dt, cache)
    w = factor_w(problem, J, gdt)
    c, d, A, gC = p["c"], p["d"], p["A"], p["gC"]
    k: list = []
    fi = f0
    for i in range(p["s"]):
        if i > 0:
            ui = _lincomb(y, k, A[i])
            fi = problem.f_eval(t + c[i] * dt, ui)
        rhs = fi * gdt
        for j, a in gC[i]:
            rhs.add_(k[j], alpha=a)
        if T is not None and d[i] != 0.0:
            rhs.add_(T, alpha=d[i] * dt * dt)
        k.append(solve_w(problem, w, rhs))
    if p["fsal"]:
        y1, f1 = ui, fi
    else:
        y1 = _lincomb(y, k, p["b"])
        f1 = problem.f_eval(t + dt, y1)
    err = _lincomb(None, k, p["b_err"]) if p["b_err"] is not None else None
    q = hermite_quad(problem, t, dt, y, f0, y1, f1) if problem.has_quad else None
    return StepResult(y1, f1, err, q)
