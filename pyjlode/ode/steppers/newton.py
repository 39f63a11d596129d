"""Simplified Newton for one implicit stage, judged so that it cannot report a false convergence.

The stage equation (OrdinaryDiffEq's DIRK form, z = dt k) is

    G(z) = dt f(t_i, tmp + gamma z) - z = 0,

iterated as ``W dz = G(z)``, ``z <- z + dz`` with the LU of ``W = I - gamma dt J``. Convergence is
judged as OrdinaryDiffEq's ``NLNewton`` judges it (``nlsolve.jl``; Hairer & Wanner II, Sec. IV.8):
``ndz`` is the RMS norm of dz scaled by ``atol + rtol max(|y|, |Y|)``, ``theta = max(0.3 theta_prev,
ndz / ndz_prev)`` is the measured contraction rate, carried from stage to stage and step to step
(reset to 1 after a rejected step or a failed solve), and the stage has converged when
``eta ndz < KAPPA`` with ``eta = theta / (1 - theta)``: the a-posteriori bound on the distance of
z from the root is then a hundredth of the tolerance.

Where we are stricter than OrdinaryDiffEq. A stale Jacobian lies: W from an old J can shrink dz by
orders of magnitude while G(z) stays large, and a rate measured on such corrections can look fast
while the slow error direction hides in a correction too small to dominate the norm. So:

- A first iteration is accepted (by the carried theta, or by ``ndz < 1e-5``) only when J was
  evaluated at this step's start point, W was factorised for this gamma*dt, and the correction is
  itself within the tolerance (``ndz <= 1``). Otherwise at least two iterations run, so the rate is
  measured on this stage before anything is accepted.
- The rate is the larger of the corrections' ratio and the residuals' ratio (both scaled norms).
  W^-1 shrinks stiff error components in dz; G = -W_true e magnifies them. A residual within
  NOISE times its rounding level (eps (||dt f|| + ||z||)) is not used.
- An iteration that does not contract (rate >= 1) is a failure, never a converged "rounding
  floor", unless J is fresh, the correction is already below KAPPA and the rate is at most
  MAX_RATE (float32 stiff fields stall there at rates of 0.5 to 3).

A failure is answered by the stepper: fresh J (if stale), then W refactorised (if rescaled), then
the step is rejected and the loop halves dt.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from ..krylov import LinearSolveFailure
from ..linalg import solve_w

KAPPA = 0.01                 # converged when eta * ndz < KAPPA (OrdinaryDiffEq's kappa = 1/100)
MAX_ITER = 10                # OrdinaryDiffEq's max_iter
MAX_RATE = 2.0               # above this, divergence, not rounding noise (OrdinaryDiffEq's check_div)
THETA_DAMP = 0.3             # theta = max(THETA_DAMP * theta, rate) (OrdinaryDiffEq)
FIRST_NDZ = 1e-5             # a first correction this small is converged (OrdinaryDiffEq), fresh J only
FORCING = 0.01               # a Krylov W may leave this fraction of G (inexact Newton; the rate is measured)
NOISE = 100.0                # a residual within this factor of its rounding level says nothing about the rate
_EPS = {dt: torch.finfo(dt).eps for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def _norms(dz: Tensor, G: Tensor, dtf: Tensor, z: Tensor, inv_scale: Tensor) -> tuple:
    """Scaled RMS norms of the correction and of the residual, and a bound on the residual's
    rounding level (``||dt f|| + ||z||``, times eps by the caller); for a batch the worst row of
    each, so every system converges. One stacked reduction and one host sync per iteration."""
    if G.requires_grad or z.requires_grad:     # backprop through the solve: keep norms off the graph
        dz, G, dtf, z = dz.detach(), G.detach(), dtf.detach(), z.detach()
    norms = torch.linalg.vector_norm(torch.stack([dz, G, dtf, z]).mul_(inv_scale), dim=-1)
    if norms.dim() > 1:
        norms = norms.amax(dim=-1)
    ndz, nG, ndtf, nz = norms.tolist()
    root_n = math.sqrt(dz.shape[-1])
    return ndz / root_n, nG / root_n, (ndtf + nz) / root_n


def solve_stage(problem, ti: float, tmp: Tensor, z: Tensor, y: Tensor, dt: float, gamma: float,
                state) -> Optional[Tensor]:
    """Solve ``z = dt f(ti, tmp + gamma z)`` from the guess z; None when it fails.

    ``state`` supplies the LU (``w``), whether J is fresh (``j_current``) and the carried rate
    (``theta``); ``iters`` and ``rate_max`` are accumulated for the stepper, and ``nonfinite`` is set
    when the solve fails on NaN or inf. A W factorised for
    another gamma*dt (within the refactorisation cutoff) is rescaled by gdt_W / gdt, which is
    exact for the stiff components that dominate convergence (OrdinaryDiffEq does the same); the
    non-stiff ones then contract only by |1 - corr| per iteration, a floor for theta.
    """
    w = state.w
    corr = w.gdt / (gamma * dt)
    fresh = state.j_current and corr == 1.0
    eps = _EPS[y.dtype]
    Y = tmp.add(z, alpha=gamma)
    # detach, not no_grad(): the context manager costs more than the whole scale on small systems
    inv_scale = torch.maximum(y.detach().abs(), Y.detach().abs()).mul_(problem.rtol).add_(problem.atol) \
        .reciprocal_()
    theta, prev, rate_prev = max(state.theta, abs(1.0 - corr)), None, None
    for it in range(1, MAX_ITER + 1):
        state.iters += 1
        # Out of place: f's output and lu_solve's may be saved by autograd (backprop through a solve).
        dtf = problem.f_eval(ti, Y).mul(dt)
        G = dtf - z
        try:
            dz = solve_w(problem, w, G, FORCING)
        except LinearSolveFailure:
            return None                        # handled as a failed Newton solve: fresh J, then smaller dt
        if corr != 1.0:
            dz = dz * corr
        ndz, nG, noise = _norms(dz, G, dtf, z, inv_scale)
        if not (math.isfinite(ndz) and math.isfinite(nG)):
            state.nonfinite = True
            return None
        if it > 1:
            rate = _rate(ndz, nG, noise * eps, prev)
            state.rate_max = max(state.rate_max, rate)
            if rate >= 1.0:
                if fresh and ndz < KAPPA and rate <= MAX_RATE:
                    state.theta = 1.0          # converged to the rounding floor; nothing to carry
                    return z + dz
                return None
            theta = max(THETA_DAMP * theta, rate)
            # Hairer & Wanner II, Sec. IV.8 (RADAU5): once convergence is plainly linear (the rate
            # stopped improving), the remaining iterations cannot reach the tolerance: fail now.
            if it > 2 and ndz > 1.0 and rate >= rate_prev and \
                    rate ** (MAX_ITER - it) / (1.0 - rate) * ndz > KAPPA:
                return None
            rate_prev = rate
        z = z + dz
        if it > 1 or (fresh and ndz <= 1.0):
            eta = theta / (1.0 - theta) if theta < 1.0 else math.inf
            if eta * ndz < KAPPA or (it == 1 and ndz < FIRST_NDZ):
                state.theta = theta
                return z
        Y = tmp.add(z, alpha=gamma)
        prev = (ndz, nG, noise * eps)
    return None


def _rate(ndz: float, nG: float, floor: float, prev: tuple) -> float:
    """The contraction rate of the last iteration: the larger of the correction's and the residual's.

    The chord iteration contracts errors by M = I - W^-1 W_true. The corrections see M through
    W^-1, which shrinks stiff components; the residuals G = -W_true e see it through W_true,
    which magnifies them. With a stale J the slow direction of M can hide in either norm (a dz
    that stays constant but tiny next to a transient that decays), so both ratios are measured;
    the residual's only where both residuals stand above their rounding level.
    """
    ndz_prev, nG_prev, floor_prev = prev
    rate = ndz / ndz_prev if ndz_prev > 0 else (0.0 if ndz == 0 else math.inf)
    if nG > NOISE * floor and nG_prev > NOISE * floor_prev:
        rate = max(rate, nG / nG_prev)
    return rate
