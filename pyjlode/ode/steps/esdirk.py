"""The ESDIRK step (TRBDF2, KenCarp4, Kvaerno5): simplified Newton with J and W reuse.

Stage i (i >= 1) solves ``z_i = dt f(t + c_i dt, tmp_i + gamma z_i)`` with
``tmp_i = y + sum_{j<i} A_ij z_j`` (OrdinaryDiffEq's convention, z = dt k). Newton uses the LU
of ``W = I - gamma dt J`` (``linalg``); its defaults are OrdinaryDiffEq's ``NLNewton``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..linalg import factor_w, jacobian, solve_w, w_is_stale
from ..problem import StepResult

KAPPA = 0.01                 # stop when eta * ||dz|| < KAPPA (scaled norm)
MAX_ITER = 10
FAST_THETA = 0.2             # measured rate at or below which J is kept for the next step
W_CUTOFF = 0.2               # refactorise W when |gdt_W / gdt - 1| exceeds this


def _plan(tab) -> dict:
    """Per-tableau constants as Python floats (nonzero entries only), built once."""
    plan = tab._cache.get("esdirk_plan")
    if plan is None:
        def nz(row):
            return tuple((j, float(a)) for j, a in enumerate(row) if a != 0)

        s = tab.stages
        plan = dict(g=float(tab.gamma), s=s, c=tuple(float(x) for x in tab.c),
                    A=tuple(nz(tab.A[i][:i]) for i in range(s)),
                    pred=tuple(nz(r) for r in tab.predictor),
                    b=nz(tab.b), b_err=nz(tab.b_err))
        tab._cache["esdirk_plan"] = plan
    return plan


def _lincomb(base: Tensor | None, z: list, coeffs: tuple) -> Tensor:
    """``base + sum_j a_j z_j`` as a fresh tensor (``base`` and ``z`` untouched)."""
    if not coeffs:
        return torch.zeros_like(z[0]) if base is None else base.clone()
    j, a = coeffs[0]
    acc = z[j] * a if base is None else base.add(z[j], alpha=a)
    for j, a in coeffs[1:]:
        acc.add_(z[j], alpha=a)
    return acc


def _rms(x: Tensor) -> float:
    """RMS norm (the step's one host sync); for a batch the worst row, so every system converges."""
    if x.dim() > 1:
        return float(torch.linalg.vector_norm(x, dim=-1).max()) / math.sqrt(x.shape[-1])
    return float(torch.linalg.vector_norm(x)) / math.sqrt(x.numel())


def _newton(problem, ti: float, tmp: Tensor, z: Tensor, y: Tensor, dt: float, g: float, w, st: dict):
    """Solve stage ``z = dt f(ti, tmp + g z)`` from the guess z; None when it diverges.

    A W factorised for another gdt (within W_CUTOFF) is rescaled by gdt_W / gdt, which is exact
    for the stiff components that dominate convergence (OrdinaryDiffEq does the same).
    """
    corr = w.gdt / (g * dt)
    Y = tmp.add(z, alpha=g)
    with torch.no_grad():
        inv_scale = torch.maximum(y.abs(), Y.abs()).mul_(problem.rtol).add_(problem.atol).reciprocal_()
    # A reused W built for another gdt contracts non-stiff components only by |1 - corr| per
    # iteration: the previous stage's rate must not let one iteration pass for converged.
    theta, ndz_prev = max(st["theta"], abs(1.0 - corr)), None
    for it in range(1, MAX_ITER + 1):
        st["iters"] += 1
        # Out of place: f's output and lu_solve's may be saved by autograd (backprop through a solve).
        dz = solve_w(problem, w, problem.f_eval(ti, Y).mul(dt).sub_(z))
        if corr != 1.0:
            dz = dz * corr
        ndz = _rms(dz.detach() * inv_scale)
        if not math.isfinite(ndz):
            return None
        if it > 1:
            rate = ndz / ndz_prev
            st["rate_max"] = max(st["rate_max"], rate)
            theta = max(0.3 * theta, rate)  # damped by history (OrdinaryDiffEq), used for eta
            if rate >= 1.0:
                # No contraction. With the correction already inside the tolerance this is the
                # rounding-noise floor (OrdinaryDiffEq accepts only theta == 1 +- 100 sqrt(eps);
                # float32 stiff fields stall at theta ~ 0.5..3): keep z. Otherwise: diverged.
                if ndz <= 1.0:
                    st["theta"] = min(theta, 0.99)
                    return z
                return None
            # Hairer & Wanner II, Sec. IV.8 (RADAU5): once convergence is plainly linear (the rate
            # stopped improving), the remaining iterations cannot reach the tolerance: fail now.
            if it > 2 and ndz > 1.0 and rate >= rate_prev and \
                    rate ** (MAX_ITER - it) / (1.0 - rate) * ndz > KAPPA:
                return None
            rate_prev = rate
        z = z + dz
        Y = tmp.add(z, alpha=g)
        eta = theta / (1.0 - theta) if theta < 1.0 else math.inf
        if (it == 1 and ndz < 1e-5) or eta * ndz < KAPPA:
            st["theta"] = theta
            return z
        ndz_prev = ndz
    return None


def _matrices(problem, t: float, y: Tensor, gdt: float, cache: dict, force_j: bool):
    """J and the LU of W under the reuse policy; returns (w, J_is_current).

    J is recomputed when the last Newton solve was not fast (rate > FAST_THETA), after a rejected
    attempt or a failure (force_j), or when none exists -- never twice at the same point. W is
    refactorised with a new J, after any rejected attempt, or when gdt moved by more than W_CUTOFF.
    """
    current = cache.get("J_y") is y and cache.get("J_t") == t
    new_j = not current and (force_j or cache.get("J") is None or not cache.get("fast", False)
                             or cache.get("rejected", False))
    if new_j:
        cache["J"] = jacobian(problem, t, y, cache)
        cache["J_t"], cache["J_y"] = t, y
        current = True
    w = cache.get("W")
    if new_j or cache.get("rejected", False) or w_is_stale(w, gdt, W_CUTOFF):
        w = cache["W"] = factor_w(problem, cache["J"], gdt)
    return w, current


def _stages(problem, p: dict, t: float, y: Tensor, f0: Tensor, dt: float, w, cache: dict):
    """All stages; returns the stage variables z and stage values Y, or None on divergence."""
    g, A, c, pred = p["g"], p["A"], p["c"], p["pred"]
    st = {"theta": 1.0 if cache.get("rejected", False) else cache.get("theta", 1.0),
          "rate_max": 0.0, "iters": 0}
    z, Ys = [f0 * dt], [y]
    for i in range(1, p["s"]):
        tmp = _lincomb(y, z, A[i])
        zi = _newton(problem, t + c[i] * dt, tmp, _lincomb(None, z, pred[i]), y, dt, g, w, st)
        if zi is None:
            problem.stats.nnewton += st["iters"]
            return None
        z.append(zi)
        Ys.append(tmp.add(zi, alpha=g))
    problem.stats.nnewton += st["iters"]
    cache["theta"] = st["theta"]
    cache["fast"] = st["rate_max"] <= FAST_THETA
    return z, Ys


def _quad(problem, p: dict, t: float, dt: float, Ys: list, cache: dict) -> tuple:
    """``dt sum_i b_i q(t + c_i dt, Y_i)`` at the converged stage values."""
    last = cache.get("q_last")
    total = None
    for i, b in p["b"]:
        if i == 0 and last is not None and last[0] is Ys[0]:
            q = last[1]
        else:
            q = problem.q_eval(t + p["c"][i] * dt, Ys[i])
        if total is None:
            total = [qk * (b * dt) for qk in q]
        else:
            for acc, qk in zip(total, q):
                acc.add_(qk, alpha=b * dt)
        if i == p["s"] - 1:
            cache["q_last"] = (Ys[i], q)  # Y_s is y1: the next step's stage-0 rates
    return tuple(total)


def esdirk_step(problem, method, t: float, y: Tensor, f0: Tensor, dt: float, cache: dict) -> StepResult:
    """One ESDIRK step from (t, y) with ``f0`` the derivative at (t, y).

    Newton starts each stage from the tableau's predictor, measures convergence in the RMS
    norm scaled by ``atol + rtol max(|y|, |Y|)`` (worst row for batches) and stops when
    ``eta ||dz|| < KAPPA``. It fails when the norm is not finite, the iterates stop contracting
    while the correction is still above the tolerance, the rate predicts MAX_ITER will not
    suffice, or MAX_ITER is reached. A failure with a stale J is retried once with a fresh J;
    otherwise the step returns ``ok=False`` and the loop halves dt.

    The methods are stiffly accurate: ``y1`` is the last stage value and ``f1 = z_s / dt`` is its
    derivative, free. The error estimate is Shampine's filtered ``W^-1 sum (b - b_hat)_i z_i``
    with the step's own LU (not OrdinaryDiffEq's gamma*dt-scaled variant).
    """
    p = _plan(method.tableau)
    gdt = p["g"] * dt
    force_j = False
    while True:
        w, current = _matrices(problem, t, y, gdt, cache, force_j)
        out = _stages(problem, p, t, y, f0, dt, w, cache)
        if out is not None:
            break
        problem.stats.nnewton_fail += 1
        cache["fast"], cache["theta"] = False, 1.0
        if current:
            return StepResult(y, f0, None, None, ok=False)
        force_j = True
    z, Ys = out
    y1, f1 = Ys[-1], z[-1] / dt
    err = solve_w(problem, w, _lincomb(None, z, p["b_err"]))
    q = _quad(problem, p, t, dt, Ys, cache) if problem.has_quad else None
    return StepResult(y1, f1, err, q)
