"""Simplified Newton for one implicit stage.

The stage equation (OrdinaryDiffEq's DIRK form, z = dt k) is

    G(z) = dt f(t_i, tmp + gamma z) - z = 0,

iterated as ``W dz = G(z)``, ``z <- z + dz`` with the LU of ``W = I - gamma dt J``. ``ndz`` is the
RMS norm of dz scaled by ``atol + rtol max(|y|, |Y|)``, ``theta`` the contraction rate carried from
stage to stage, and the stage has converged when ``eta ndz < KAPPA`` with ``eta = theta / (1 - theta)``
(OrdinaryDiffEq's ``NLNewton`` defaults).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from ..linalg import solve_w

KAPPA = 0.01                 # stop when eta * ||dz|| < KAPPA (scaled norm)
MAX_ITER = 10


def scaled_rms(x: Tensor) -> float:
    """RMS norm (the step's one host sync); for a batch the worst row, so every system converges."""
    if x.dim() > 1:
        return float(torch.linalg.vector_norm(x, dim=-1).max()) / math.sqrt(x.shape[-1])
    return float(torch.linalg.vector_norm(x)) / math.sqrt(x.numel())


def solve_stage(problem, ti: float, tmp: Tensor, z: Tensor, y: Tensor, dt: float, gamma: float,
                state) -> Optional[Tensor]:
    """Solve ``z = dt f(ti, tmp + gamma z)`` from the guess z; None when it diverges.

    A W factorised for another gdt (within W_CUTOFF) is rescaled by gdt_W / gdt, which is exact
    for the stiff components that dominate convergence (OrdinaryDiffEq does the same).
    """
    w = state.w
    corr = w.gdt / (gamma * dt)
    Y = tmp.add(z, alpha=gamma)
    with torch.no_grad():
        inv_scale = torch.maximum(y.abs(), Y.abs()).mul_(problem.rtol).add_(problem.atol).reciprocal_()
    # A reused W built for another gdt contracts non-stiff components only by |1 - corr| per
    # iteration: the previous stage's rate must not let one iteration pass for converged.
    theta, ndz_prev = max(state.theta, abs(1.0 - corr)), None
    for it in range(1, MAX_ITER + 1):
        state.iters += 1
        # Out of place: f's output and lu_solve's may be saved by autograd (backprop through a solve).
        dz = solve_w(problem, w, problem.f_eval(ti, Y).mul(dt).sub_(z))
        if corr != 1.0:
            dz = dz * corr
        ndz = scaled_rms(dz.detach() * inv_scale)
        if not math.isfinite(ndz):
            return None
        if it > 1:
            rate = ndz / ndz_prev
            state.rate_max = max(state.rate_max, rate)
            theta = max(0.3 * theta, rate)  # damped by history (OrdinaryDiffEq), used for eta
            if rate >= 1.0:
                # No contraction. With the correction already inside the tolerance this is the
                # rounding-noise floor (OrdinaryDiffEq accepts only theta == 1 +- 100 sqrt(eps);
                # float32 stiff fields stall at theta ~ 0.5..3): keep z. Otherwise: diverged.
                if ndz <= 1.0:
                    state.theta = min(theta, 0.99)
                    return z
                return None
            # Hairer & Wanner II, Sec. IV.8 (RADAU5): once convergence is plainly linear (the rate
            # stopped improving), the remaining iterations cannot reach the tolerance: fail now.
            if it > 2 and ndz > 1.0 and rate >= rate_prev and \
                    rate ** (MAX_ITER - it) / (1.0 - rate) * ndz > KAPPA:
                return None
            rate_prev = rate
        z = z + dz
        Y = tmp.add(z, alpha=gamma)
        eta = theta / (1.0 - theta) if theta < 1.0 else math.inf
        if (it == 1 and ndz < 1e-5) or eta * ndz < KAPPA:
            state.theta = theta
            return z
        ndz_prev = ndz
    return None
