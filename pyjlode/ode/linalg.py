"""Per-row Jacobians and the batched LU of W = I - gamma*dt*J, shared by the stiff steppers.

A state ``y`` of shape ``(n,)`` is one system with Jacobian ``(n, n)``; ``(B, n)`` is ``B``
independent systems, so the Jacobian is block diagonal and only the ``(B, n, n)`` blocks are
stored, factorised and solved (never a dense ``(B*n)^2`` matrix).

The engine's one W convention, used by every stiff stepper and every docstring: ``W = I - gdt * J``
with ``gdt = gamma * dt`` (OrdinaryDiffEq's ``J - I/gdt`` is ``-W/gdt``; the stage solutions are the same).

``linsolve="krylov"`` (see :mod:`.krylov`) solves W x = b matrix-free by GMRES instead; ``problem.jac``
may then return a :class:`~.krylov.JacobianOperator` (J by its action), which the dense path
materialises.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from ..errors import InputError
from .krylov import DenseOperator, JacobianOperator, KrylovW, gmres

__all__ = ["Jacobian", "time_derivative", "WFactor", "factor_w", "solve_w", "w_is_stale", "LINSOLVES"]

# "dense": per-row LU of W (exact, B·n³/3 per factorisation); "krylov": GMRES, Jacobi-preconditioned,
# on products J v (no LU; no Jacobian either when problem.jac returns a JacobianOperator).
LINSOLVES = ("dense", "krylov")

# Up to this state size a plain autograd loop (n backward passes) beats torch.func's per-call
# overhead (and skips its one-time import of torch._dynamo, seconds on a loaded CPU).
LOOP_MAX_N = 4
# From this state size on, forward mode (vmap of one JVP per column) builds the autodiff
# Jacobian; below it reverse mode (vmap of one VJP per row). Measured on a loaded 2-core CPU with
# torch 2.13: reverse ~2x faster for an MLP at n <= 16, forward 1.1-1.5x faster for a GRU field
# at B=32, n=64..256 (equal for an MLP there).
FORWARD_MODE_MIN_N = 64


class Jacobian:
    """Evaluates per-row Jacobians of ``problem.f``; one per stepper state.

    Uses ``problem.jac`` when given (``(n, n)`` for 1-D ``y``; ``(B, n, n)`` or a shared ``(n, n)``
    for batched ``y``), else ``torch.func``: the one-hot directions are broadcast across the batch,
    which yields each row's own Jacobian because rows are independent, so ``f`` never needs to
    accept an unbatched input. ``loop`` records that ``f`` could not be vmapped, so later calls go
    straight to the plain autograd loop.
    """

    __slots__ = ("loop",)

    def __init__(self):
        self.loop = False

    def __call__(self, problem, t: float, y: Tensor) -> Tensor:
        """``(n, n)`` or ``(B, n, n)`` Jacobian at ``(t, y)`` of ``y``'s dtype.

        Counts ``problem.stats.njac``; never records an autograd graph.
        """
        problem.stats.njac += 1
        y = y.detach()
        with torch.no_grad():
            if problem.jac is not None:
                return _checked(problem.jac(t, y), y)
            if y.shape[-1] > LOOP_MAX_N and not self.loop:
                try:
                    return _func_jacobian(problem.f, t, y)
                except (RuntimeError, NotImplementedError, ValueError, TypeError):
                    self.loop = True
            return _loop_jacobian(problem.f, t, y)


def _checked(J, y: Tensor):
    if isinstance(J, JacobianOperator):
        return J
    n = y.shape[-1]
    want = (n, n) if y.dim() == 1 else (y.shape[0], n, n)
    if tuple(J.shape) == want:
        return J.to(y.dtype)
    if y.dim() == 2 and tuple(J.shape) == (n, n):
        return J.to(y.dtype).expand(want)  # one Jacobian shared by every row (e.g. a linear f)
    raise ValueError(f"jac(t, y) returned shape {tuple(J.shape)} for y of shape {tuple(y.shape)}; "
                     f"return {want} (one (n, n) block per row)")


def _directions(y: Tensor) -> Tensor:
    """(n, *y.shape): the i-th one-hot vector broadcast across every row of the batch."""
    n = y.shape[-1]
    eye = torch.eye(n, dtype=y.dtype, device=y.device)
    return eye if y.dim() == 1 else eye.unsqueeze(1).expand(n, *y.shape)


def _func_jacobian(f, t: float, y: Tensor) -> Tensor:
    def fy(u):
        return f(t, u)

    dirs = _directions(y)
    if y.shape[-1] >= FORWARD_MODE_MIN_N:
        cols = vmap(lambda v: jvp(fy, (y,), (v,))[1])(dirs)      # (n, *y.shape): column j of each J
        return cols.movedim(0, -1)
    _, pullback = vjp(fy, y)
    rows = vmap(pullback)(dirs)[0]                              # (n, *y.shape): row i of each J
    return rows.movedim(0, -2)


def _loop_jacobian(f, t: float, y: Tensor) -> Tensor:
    """Plain autograd, one backward pass per state component (for f that vmap cannot trace)."""
    with torch.enable_grad():
        u = y.clone().requires_grad_(True)
        out = f(t, u)
        rows = [torch.autograd.grad(out, u, d, retain_graph=True, allow_unused=True)[0]
                for d in _directions(y)]
    rows = [torch.zeros_like(y) if r is None else r for r in rows]
    return torch.stack(rows, dim=-2)


def time_derivative(problem, t: float, y: Tensor, f0: Tensor, dt: float) -> Tensor:
    """``∂f/∂t`` at ``(t, y)`` by a forward difference (one counted f evaluation).

    A difference rather than forward-mode AD in ``t`` because the engine's callbacks take ``t`` as
    a Python float (e.g. the adjoint's dense-output lookup of y(t)), which AD would see as constant.
    The step ``delta`` points into the interval being integrated, so at a kink of a piecewise
    smooth f (the adjoint's field at a forward step boundary) this is the one-sided derivative of
    the side the step lives on.
    """
    eps = torch.finfo(y.dtype).eps
    delta = math.sqrt(eps) * max(1.0, abs(t))
    delta = math.copysign(delta, dt)  # step into the interval being integrated
    delta = (t + delta) - t           # exactly representable increment
    return (problem.f_eval(t + delta, y) - f0) / delta


class WFactor:
    """LU factors of ``W = I - gdt * J`` (per row) and the ``gdt`` they were built with; for
    ``linsolve="krylov"`` no factors but ``krylov``, W as an operator with its preconditioner."""

    __slots__ = ("lu", "pivots", "gdt", "krylov")

    def __init__(self, lu: Tensor, pivots: Tensor, gdt: float, krylov: KrylovW | None = None):
        self.lu, self.pivots, self.gdt, self.krylov = lu, pivots, gdt, krylov


def factor_w(problem, J, gdt: float, linsolve: str = "dense", y: Tensor | None = None) -> WFactor:
    """Factorise ``W = I - gdt * J`` with a batched partial-pivoting LU (counts ``nlu``).

    ``lu_factor_ex`` does not check for singularity (no host sync); a singular W shows up as a
    non-finite solve, which the steppers treat as a failed step. With ``linsolve="krylov"`` nothing
    is factorised (no ``nlu``): W is kept as an operator over J (a tensor or a JacobianOperator),
    with weights from the start point ``y``.
    """
    if linsolve == "krylov":
        op = J if isinstance(J, JacobianOperator) else DenseOperator(J)
        return WFactor(None, None, gdt, KrylovW(op, gdt, y, problem.rtol, problem.atol))
    problem.stats.nlu += 1
    if isinstance(J, JacobianOperator):
        J = J.dense()
    W = J * (-gdt)
    W.diagonal(dim1=-2, dim2=-1).add_(1.0)
    lu, pivots, _ = torch.linalg.lu_factor_ex(W)
    return WFactor(lu, pivots, gdt)


def solve_w(problem, w: WFactor, rhs: Tensor, forcing: float = 0.0) -> Tensor:
    """Solve ``W x = rhs`` for ``rhs`` shaped like ``y`` (counts ``nsolve``).

    ``forcing``: for a Krylov W, the residual may be this fraction of the right-hand side's (an
    inexact Newton step); 0 solves to the absolute tolerance of :mod:`.krylov`. Raises
    :class:`~.krylov.LinearSolveFailure` when GMRES does not converge.
    """
    problem.stats.nsolve += 1
    if w.krylov is not None:
        if rhs.requires_grad and torch.is_grad_enabled():
            raise InputError("linsolve='krylov' cannot be backpropagated through (GMRES runs outside autograd): "
                             "use odeint_adjoint, or the dense linear solver (the solver name without ':krylov')")
        return gmres(w.krylov, rhs, forcing)[0]
    return torch.linalg.lu_solve(w.lu, w.pivots, rhs.unsqueeze(-1)).squeeze(-1)


def w_is_stale(w: WFactor | None, gdt: float, cutoff: float = 0.2) -> bool:
    """True when W must be refactorised: none yet, or ``|gdt_W / gdt - 1| > cutoff``."""
    return w is None or abs(w.gdt / gdt - 1.0) > cutoff
