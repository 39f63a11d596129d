"""Adjoint sensitivities of an ODE solve as a torch.autograd.Function, with a backward solver of its own.

``odeint_adjoint`` solves forward under no_grad (no autograd graph) and, on backward, integrates the
adjoint a(t) = dL/dy(t) from the last output time to the first:

- ``sensealg="interpolating"`` (default): y(t) comes from the forward solve's dense output, so only
  the linear equation da/dt = -(∂f/∂y)ᵀa is integrated. Its matrix has the forward Jacobian's
  spectrum, so a stiff forward problem gives a stiff but *stable* backward one, which a stiff
  backward solver (KenCarp4, Rodas5P, TRBDF2, ...) handles with large steps.
- ``sensealg="backsolve"``: torchdiffeq's scheme. y is re-integrated backwards together with a and
  reset to the saved forward value at each output time: O(1) memory, but stiff decaying modes grow
  in reverse time (the failure this module exists to avoid).

In both, dL/dθ = ∫ aᵀ ∂f/∂θ dt is a quadrature along the backward solve's steps (``Problem.quad``),
never part of a Newton solve: each family applies its own method to the augmented system [a, θ̄]
(Rosenbrock from its own W-transformed stages). With ``quad_error="control"`` (default) the
quadrature's embedded error enters each step's error ratio (per parameter tensor, see
``loop._Loop._quad_ratio``); ``"ignore"`` lets the adjoint state alone choose the steps (faster, and
what the GRU-ODE layer uses; docs/solvers.md "Adjoint quadrature per family" has the figures).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..errors import InputError
from .adjoint_dynamics import (AutogradVJP, DenseState, UserVJP, backsolve_problem, forward_jacobian,
                               interpolating_problem)
from .api import _check_inputs, _check_times
from .errors import SolverError
from .loop import integrate
from .methods import Method, get_method
from .problem import Problem, SolveStats

SENSEALGS = ("interpolating", "backsolve")
QUAD_ERRORS = ("control", "ignore")

__all__ = ["odeint_adjoint", "adjoint_config", "adjoint_solve", "AdjointConfig", "AdjointStats", "SENSEALGS",
           "QUAD_ERRORS"]


@dataclass
class AdjointStats:
    """Work counters of odeint_adjoint calls, accumulated (``+=``) over every call it is passed to.

    Attributes:
        forward: counters of the forward solves (filled during forward).
        backward: counters of the adjoint solves (filled during backward).
        dt_next: the last forward solve's step proposal, to warm-start the next solve (``dt0=``).
    """

    forward: SolveStats = field(default_factory=SolveStats)
    backward: SolveStats = field(default_factory=SolveStats)
    dt_next: Optional[float] = None

    def __str__(self) -> str:
        return f"forward: {self.forward} | backward: {self.backward}"


@dataclass(frozen=True)
class AdjointConfig:
    """Every non-tensor setting of one odeint_adjoint call (the Function's first argument).

    ``backward_atol=None`` scales ``atol`` by the size of the incoming cotangents (see
    ``_backward_atol``). ``backward_dt0`` is the backward solve's first step (None: warm start
    from the forward solve's last proposal, then from the previous interval's); for a fixed-step
    backward method it is the step size.
    """

    f: Callable = field(compare=False)
    ts: tuple
    method: Method
    backward_method: Method
    sensealg: str = "interpolating"
    rtol: float = 1e-6
    atol: float = 1e-8
    backward_rtol: float = 1e-6
    backward_atol: Optional[float] = None
    jac: Optional[Callable] = field(default=None, compare=False)
    vjp: Optional[Callable] = field(default=None, compare=False)
    max_steps: int = 100_000
    dt0: Optional[float] = None
    backward_dt0: Optional[float] = None
    norm: str = "rms"
    stats: Optional[AdjointStats] = field(default=None, compare=False)
    quad_error: str = "control"

    def bind(self, f: Callable, *, jac: Optional[Callable] = None, vjp: Optional[Callable] = None,
             dt0: Optional[float] = None) -> "AdjointConfig":
        """These settings for another vector field (and first step), without checking them again."""
        return replace(self, f=f, jac=jac, vjp=vjp, dt0=dt0)


def _forward_solve(cfg: AdjointConfig, y0: Tensor, dense: bool):
    """The forward solve (never recorded by autograd); fills cfg.stats.forward and dt_next."""
    problem = Problem.from_torch(cfg.f, jac=cfg.jac, rtol=cfg.rtol, atol=cfg.atol)
    with torch.no_grad():
        sol = integrate(problem, cfg.method, y0, cfg.ts, dt0=cfg.dt0, max_steps=cfg.max_steps,
                        norm=cfg.norm, dense=dense)
    if cfg.stats is not None:
        cfg.stats.forward += sol.stats
        cfg.stats.dt_next = sol.dt_next
    return sol


class _OdeintAdjoint(torch.autograd.Function):
    """forward(ctx, cfg, y0, t, *params) -> ys; backward -> (None, dL/dy0, dL/dt or None, *dL/dθ)."""

    @staticmethod
    def forward(ctx, cfg: AdjointConfig, y0: Tensor, t: Optional[Tensor], *params: Tensor) -> Tensor:
        sol = _forward_solve(cfg, y0, dense=cfg.sensealg == "interpolating")
        # The dense step data (y, f and the interpolant's D_j) are the only checkpoints; saved
        # (not stored on ctx) so autograd frees them after a backward without retain_graph.
        steps = (*sol._y_steps, *sol._f_steps) if sol._y_steps is not None else ()
        kept = sol._k_steps or ()
        ctx.cfg, ctx.t_steps, ctx.n_params, ctx.last_dt = cfg, sol.t_steps, len(params), sol.dt_next
        ctx.n_steps, ctx.interp = len(steps), sol.interpolant
        ctx.save_for_backward(sol.ys, *params, *steps, *(k for ks in kept for k in ks))
        return sol.ys

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_ys: Tensor):
        cfg = ctx.cfg
        ys, *saved = ctx.saved_tensors
        params, steps = saved[:ctx.n_params], saved[ctx.n_params:ctx.n_params + ctx.n_steps]
        need_y0, need_t, need_p = ctx.needs_input_grad[1], ctx.needs_input_grad[2], ctx.needs_input_grad[3:]
        keep = [k for k, need in enumerate(need_p) if need]
        vjp = (UserVJP(cfg.f, cfg.vjp, keep) if cfg.vjp is not None
               else AutogradVJP(cfg.f, [params[k] for k in keep]))
        try:
            dense = _dense_state(ctx, steps, saved[ctx.n_params + ctx.n_steps:]) if steps else None
            a, a_plus, theta = _adjoint_solve(cfg, dense, ctx.last_dt, ys, grad_ys, vjp, bool(keep))
        except SolverError as exc:   # its hint depends on the backward solve's sensealg
            raise exc.with_context(sensealg=cfg.sensealg, backward=True)
        finally:
            vjp.release()
        grad_p = [None] * len(params)
        for k, g in zip(keep, theta if theta is not None else [None] * len(keep)):
            grad_p[k] = torch.zeros_like(params[k]) if g is None else g
        grad_t = _time_grads(cfg, ys, grad_ys, a_plus) if need_t else None
        return (None, a if need_y0 else None, grad_t, *grad_p)


def _dense_state(ctx, steps: tuple, flat_stages: tuple) -> DenseState:
    """The forward's y(t) from its saved step data; the D_j come flat, len(interp.M) per step."""
    n, m = len(steps) // 2, len(ctx.interp.M)
    k_steps = [flat_stages[i * m:(i + 1) * m] for i in range(n - 1)] if flat_stages else None
    return DenseState(ctx.t_steps, steps[:n], steps[n:], k_steps, ctx.interp)


def _adjoint_solve(cfg: AdjointConfig, dense: Optional[DenseState], last_dt: Optional[float], ys: Tensor,
                   grad_ys: Tensor, vjp, with_quad: bool):
    """Integrate the adjoint over every output interval in reverse.

    Returns (dL/dy0, a(t0+) before the t0 cotangent is added, θ̄ tuple or None).
    """
    bm = cfg.backward_method
    jac_fwd = forward_jacobian(cfg.f, cfg.jac) if bm.stiff else None
    control = cfg.quad_error == "control"
    if cfg.sensealg == "interpolating":
        problem = interpolating_problem(dense, vjp, jac_fwd, with_quad,
                                        cfg.backward_rtol, _backward_atol(cfg, grad_ys), control)
    else:
        problem = backsolve_problem(ys.shape[-1], vjp, jac_fwd, with_quad, cfg.backward_rtol,
                                    cfg.atol if cfg.backward_atol is None else cfg.backward_atol, control)
    dt = cfg.backward_dt0 if cfg.backward_dt0 is not None else last_dt
    ts, n = cfg.ts, ys.shape[-1]
    a, theta, a_plus = grad_ys[-1], None, grad_ys[-1]
    try:
        for i in range(len(ts) - 1, 0, -1):
            if cfg.sensealg == "interpolating":
                if not bool(a.any()):   # a ≡ 0 stays 0 and adds nothing to θ̄
                    a_plus, a = torch.zeros_like(a), grad_ys[i - 1]
                    continue
                z0 = a
            else:
                z0 = torch.cat([ys[i], a], dim=-1)
            sol = integrate(problem, bm, z0, (-ts[i], -ts[i - 1]), dt0=dt, max_steps=cfg.max_steps,
                            norm=cfg.norm, dense=False)
            if bm.adaptive and cfg.backward_dt0 is None:
                dt = sol.dt_next
            z1 = sol.ys[-1]
            a_plus = z1 if cfg.sensealg == "interpolating" else z1[..., n:]
            a = a_plus + grad_ys[i - 1]
            if sol.q is not None:
                theta = sol.q if theta is None else tuple(x + y for x, y in zip(theta, sol.q))
    finally:
        if cfg.stats is not None:
            cfg.stats.backward += problem.stats
    if len(ts) == 1:
        a_plus = torch.zeros_like(a)
    return a, a_plus, theta


def _backward_atol(cfg: AdjointConfig, grad_ys: Tensor) -> float:
    """The adjoint's atol: given, or ``atol`` times the largest RMS of the output cotangents.

    a(t) is linear in the cotangents, so this keeps the gradients' relative accuracy independent
    of the loss's scale; a fixed atol in y's units would be loose for a small loss (a ~ 1e-3
    per element is common) and needlessly tight for a large one.
    """
    if cfg.backward_atol is not None:
        return cfg.backward_atol
    flat = grad_ys.reshape(len(cfg.ts), -1)
    scale = float(flat.square().mean(dim=1).max().sqrt()) if flat.shape[1] else 0.0
    return cfg.atol * scale if scale > 0 and math.isfinite(scale) else cfg.atol


def _time_grads(cfg: AdjointConfig, ys: Tensor, grad_ys: Tensor, a_plus: Tensor) -> Tensor:
    """dL/dt_i = grad_i · f(t_i, y_i) for i > 0; dL/dt_0 = -a(t_0+) · f(t_0, y_0).

    Moving an output time only moves where the trajectory is read; moving t_0 shifts the whole
    trajectory, whose sensitivity to y0 is a(t_0+) (exact also for non-autonomous f).
    """
    ts = cfg.ts
    out = torch.zeros(len(ts), dtype=ys.dtype, device=ys.device)
    with torch.no_grad():
        for i, ti in enumerate(ts):
            fi = cfg.f(torch.scalar_tensor(ti, dtype=ys.dtype, device=ys.device), ys[i])
            out[i] = -(a_plus * fi).sum() if i == 0 else (grad_ys[i] * fi).sum()
    return out


def _default_params(f, params) -> tuple:
    if params is not None:
        return tuple(params)
    if isinstance(f, nn.Module):
        return tuple(p for p in f.parameters() if p.requires_grad)
    return ()


def _make_config(f, y0, t, solver, backward_solver, sensealg, rtol, atol, backward_rtol, backward_atol,
                 jac, vjp, max_steps, dt0, backward_dt0, stats, norm, quad_error) -> AdjointConfig:
    if sensealg not in SENSEALGS:
        raise InputError(f"unknown sensealg {sensealg!r}; choose one of: {', '.join(SENSEALGS)}")
    if quad_error not in QUAD_ERRORS:
        raise InputError(f"unknown quad_error {quad_error!r}; choose one of: {', '.join(QUAD_ERRORS)}")
    method = get_method(solver)
    bmethod = method if backward_solver is None else get_method(backward_solver)
    brtol = rtol if backward_rtol is None else backward_rtol
    batol = None if backward_atol is None else float(backward_atol)
    _check_inputs(method, y0, rtol, atol, dt0, True, norm, max_steps)
    if sensealg == "backsolve" and y0.dim() not in (1, 2):
        raise InputError(f"sensealg='backsolve' needs y0 of shape (n,) or (B, n), got {tuple(y0.shape)}")
    if not bmethod.adaptive and backward_dt0 is None:
        backward_dt0 = dt0
    _check_inputs(bmethod, y0, brtol, atol if batol is None else batol, backward_dt0, True, norm, max_steps,
                  rtol_name="backward_rtol")
    if dt0 is not None and not math.isfinite(dt0):
        raise InputError(f"dt0 must be finite, got {dt0}")
    return AdjointConfig(f=f, ts=tuple(_check_times(t)), method=method, backward_method=bmethod,
                         sensealg=sensealg, rtol=float(rtol), atol=float(atol), backward_rtol=float(brtol),
                         backward_atol=batol, jac=jac, vjp=vjp, max_steps=int(max_steps), dt0=dt0,
                         backward_dt0=backward_dt0, norm=norm, stats=stats, quad_error=quad_error)


def odeint_adjoint(f: Callable, y0: Tensor, t, *, params: Optional[Sequence[Tensor]] = None,
                   solver: str = "Tsit5", backward_solver: Optional[str] = None,
                   sensealg: str = "interpolating", rtol: float = 1e-6, atol: float = 1e-8,
                   backward_rtol: Optional[float] = None, backward_atol: Optional[float] = None,
                   jac: Optional[Callable] = None, vjp: Optional[Callable] = None, max_steps: int = 100_000,
                   dt0: Optional[float] = None, backward_dt0: Optional[float] = None,
                   stats: Optional[AdjointStats] = None, norm: str = "rms",
                   quad_error: str = "control") -> Tensor:
    """Solve ``dy/dt = f(t, y)`` and differentiate the result by the adjoint method.

    Args:
        f: vector field ``f(t, y)``; t arrives as a 0-d tensor of y's dtype. Rows of a batched
            ``(B, n)`` y must be independent systems.
        y0: initial state, ``(n,)`` or ``(B, n)``.
        t: 1-D output times (tensor or list), strictly monotone. If it is a tensor that requires
            grad, dL/dt is returned too.
        params: tensors f computes with and that get gradients (f must close over these very
            objects, e.g. a per-batch input drive). Default: the trainable parameters of f when
            it is an ``nn.Module``, else none.
        solver: forward solver name (see ``SOLVERS``).
        backward_solver: adjoint solver (default: ``solver``); stiff ones get ``-J(t, y(t))ᵀ``.
        sensealg: ``"interpolating"`` (default) or ``"backsolve"``.
        rtol, atol: forward tolerances.
        backward_rtol: the adjoint's rtol (default: rtol).
        backward_atol: the adjoint's atol (default: atol times the RMS size of the largest output
            cotangent, so gradient accuracy does not depend on the loss's scale; backsolve: atol).
        jac: optional analytic ``jac(t, y) -> (n, n) | (B, n, n)`` for stiff solvers.
        vjp: optional ``vjp(t, y, a) -> (a·∂f/∂y, tuple(a·∂f/∂θ for θ in params))``.
        max_steps: bound on attempted steps of each solve.
        dt0: the forward solve's first step (warm start), or the step of a fixed-step solver.
        backward_dt0: the backward's first step (default: the forward's last proposal).
        stats: an :class:`AdjointStats` to accumulate forward and backward counters into.
        norm: error norm, ``"rms"`` or ``"rows"``.
        quad_error: ``"control"`` (default): each backward step's error ratio includes the embedded
            error of its dL/dθ increment, so the gradient meets the backward tolerances too;
            ``"ignore"``: dL/dθ is integrated along the steps the adjoint state alone chose (cheaper,
            but unchecked: a smooth a(t) times a fast ∂f/∂θ takes steps far too long for it).

    Returns:
        ``ys`` of shape ``(len(t), *y0.shape)``.

    Raises:
        InputError: bad input (one line naming the problem and the fix; also a ValueError).
        SolverError: a forward or backward solve failed (see ``pyjlode.ode.errors``).
    """
    params = _default_params(f, params)
    cfg = _make_config(f, y0, t, solver, backward_solver, sensealg, rtol, atol, backward_rtol, backward_atol,
                       jac, vjp, max_steps, dt0, backward_dt0, stats, norm, quad_error)
    t_grad = isinstance(t, Tensor) and t.requires_grad
    return adjoint_solve(cfg, y0, *params, t=t if t_grad else None)


def adjoint_config(f: Optional[Callable], y0: Tensor, t, **settings) -> AdjointConfig:
    """The checked settings ``odeint_adjoint(f, y0, t, **settings)`` solves with (same keywords and
    defaults; ``params`` apart), for a caller that solves many times with them: check once, then
    :meth:`AdjointConfig.bind` each solve's field and call :func:`adjoint_solve`.
    """
    call = inspect.signature(odeint_adjoint).bind(f, y0, t, **settings)
    call.apply_defaults()
    call.arguments.pop("params")
    return _make_config(**call.arguments)


def adjoint_solve(cfg: AdjointConfig, y0: Tensor, *params: Tensor, t: Optional[Tensor] = None) -> Tensor:
    """Solve with checked settings (:func:`adjoint_config`) and differentiate by the adjoint method.

    ``params`` are the tensors ``cfg.f`` computes with (in ``cfg.vjp``'s order); ``t``, the output times
    as a tensor, only when dL/dt is wanted. Nothing is checked again: this is odeint_adjoint's solve.
    """
    wanted = y0.requires_grad or t is not None or any(p.requires_grad for p in params)
    if not (torch.is_grad_enabled() and wanted):
        return _forward_solve(cfg, y0, dense=False).ys
    return _OdeintAdjoint.apply(cfg, y0, t, *params)
