"""Right-hand sides of the adjoint solves: a(t) over the forward's dense output, and backsolve's [y, a].

Both run in reversed time ``s = -t``, so the backward solve is an ordinary increasing-time solve
whose rates are plain VJPs with no sign flips on the hot path:

    da/ds   = (∂f/∂y)ᵀ a                 (the adjoint, linear in a)
    dθ̄/ds   = (∂f/∂θ)ᵀ a                 (a quadrature: Problem.quad, outside Newton; in the error
                                         ratio when quad_control)
    ∂(da/ds)/∂a = J(t, y(t))ᵀ            (what stiff backward solvers factorise)

Integrating s from -t_i to -t_{i-1} therefore yields a(t_{i-1}) and the interval's share of
dL/dθ = ∫ aᵀ ∂f/∂θ dt directly.
"""
from __future__ import annotations

import bisect
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from .dense import HERMITE, Interpolant, interpolate
from .linalg import Jacobian
from .problem import Problem


# Lookups remembered per solve: enough for every stage time of one step (Rodas5P has 8), since
# ESDIRK stages revisit their times for the quadrature after the Newton solves.
MEMO_SIZE = 8


class DenseState:
    """y(t) from the forward solve's accepted steps, by the forward method's own interpolant (cubic
    Hermite where the steps kept no D_j), exactly as the forward's dense output.

    Lookups are memoised: implicit backward stages evaluate the adjoint many times at one stage
    time (Newton iterations, then the quadrature), and returning the identical tensor lets
    :class:`AutogradVJP` reuse its graph.

    Args:
        t_steps: accepted step boundaries (floats, monotone in either direction).
        y_steps, f_steps: y and f at those boundaries.
        k_steps: per step, the D_j of ``interpolant`` (None: cubic Hermite).
        interpolant: the forward method's :class:`~pyjlode.ode.dense.Interpolant`.
    """

    __slots__ = ("_t", "_y", "_f", "_k", "_ip", "_keys", "_sign", "_memo")

    def __init__(self, t_steps: Sequence[float], y_steps: Sequence[Tensor], f_steps: Sequence[Tensor],
                 k_steps: Optional[Sequence[tuple]] = None, interpolant: Interpolant = HERMITE):
        self._t, self._y, self._f = list(t_steps), list(y_steps), list(f_steps)
        self._k, self._ip = (list(k_steps), interpolant) if k_steps else (None, HERMITE)
        self._sign = 1.0 if self._t[-1] >= self._t[0] else -1.0
        self._keys = [self._sign * t for t in self._t]    # ascending, for bisect
        self._memo: dict = {}

    def __call__(self, t: float) -> Tensor:
        y = self._memo.get(t)
        if y is None:
            if len(self._memo) >= MEMO_SIZE:
                del self._memo[next(iter(self._memo))]
            y = self._memo[t] = self._interp(t)
        return y

    def _interp(self, t: float) -> Tensor:
        if len(self._t) == 1:
            return self._y[0]
        i = min(max(bisect.bisect_right(self._keys, self._sign * t) - 1, 0), len(self._t) - 2)
        return interpolate(self._ip, self._t[i], self._t[i + 1], self._y[i], self._f[i], self._y[i + 1],
                           self._f[i + 1], self._k[i] if self._k is not None else None, t)


def _t_tensor(t: float, y: Tensor) -> Tensor:
    # scalar_tensor fills on y's device: no host-device transfer, no sync.
    return torch.scalar_tensor(t, dtype=y.dtype, device=y.device)


class AutogradVJP:
    """a·∂f/∂y and a·∂f/∂θ by autograd on ``f``, reusing the graphs of recent (t, y) points.

    Args:
        f: the vector field ``f(t_tensor, y)``.
        params: the tensors θ to differentiate (only those needing a gradient).
    """

    def __init__(self, f: Callable, params: Sequence[Tensor]):
        self.f, self.params = f, tuple(params)
        self._graphs: dict = {}   # t -> (y, y_req, out), at most MEMO_SIZE graphs alive

    def _graph(self, t: float, y: Tensor):
        hit = self._graphs.get(t)
        if hit is not None and hit[0] is y:
            return hit[1], hit[2]
        if len(self._graphs) >= MEMO_SIZE:
            del self._graphs[next(iter(self._graphs))]
        with torch.enable_grad():
            y_req = y.detach().requires_grad_(True)
            out = self.f(_t_tensor(t, y), y_req)
        self._graphs[t] = (y, y_req, out)
        return y_req, out

    @staticmethod
    def _grad(out: Tensor, inputs: tuple, a: Tensor) -> list:
        if not out.requires_grad:  # f ignores y and θ
            return [torch.zeros_like(x) for x in inputs]
        gs = torch.autograd.grad(out, inputs, a, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, gs)]

    def state(self, t: float, y: Tensor, a: Tensor) -> Tensor:
        y_req, out = self._graph(t, y)
        return self._grad(out, (y_req,), a)[0]

    def param(self, t: float, y: Tensor, a: Tensor) -> tuple:
        _, out = self._graph(t, y)
        return tuple(self._grad(out, self.params, a))

    def both(self, t: float, y: Tensor, a: Tensor) -> tuple[Tensor, tuple]:
        y_req, out = self._graph(t, y)
        g = self._grad(out, (y_req, *self.params), a)
        return g[0], tuple(g[1:])

    def f_and_state(self, t: float, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        y_req, out = self._graph(t, y)
        return out.detach(), self._grad(out, (y_req,), a)[0]

    def f_and_both(self, t: float, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor, tuple]:
        y_req, out = self._graph(t, y)
        g = self._grad(out, (y_req, *self.params), a)
        return out.detach(), g[0], tuple(g[1:])

    def release(self) -> None:
        """Drop the retained graphs (end of the backward pass)."""
        self._graphs.clear()


class UserVJP:
    """The same interface over a user's ``vjp(t, y, a) -> (a·∂f/∂y, (a·∂f/∂θ_k for all k))``.

    Args:
        f: the vector field (backsolve needs f itself as well).
        vjp: the user's VJP over all ``params`` passed to odeint_adjoint.
        keep: indices of the params that need a gradient.
    """

    def __init__(self, f: Callable, vjp: Callable, keep: Sequence[int]):
        self.f, self.vjp, self.keep = f, vjp, tuple(keep)

    def state(self, t: float, y: Tensor, a: Tensor) -> Tensor:
        return self.vjp(_t_tensor(t, y), y, a)[0]

    def param(self, t: float, y: Tensor, a: Tensor) -> tuple:
        return self.both(t, y, a)[1]

    def both(self, t: float, y: Tensor, a: Tensor) -> tuple[Tensor, tuple]:
        dy, dp = self.vjp(_t_tensor(t, y), y, a)
        return dy, tuple(dp[k] for k in self.keep)

    def f_and_state(self, t: float, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        return self.f(_t_tensor(t, y), y), self.state(t, y, a)

    def f_and_both(self, t: float, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor, tuple]:
        return (self.f(_t_tensor(t, y), y), *self.both(t, y, a))

    def release(self) -> None:
        pass


def forward_jacobian(f: Callable, jac: Optional[Callable]) -> Callable:
    """``J(t, y)`` (t a float) of the forward field: the user's ``jac`` or linalg's autodiff."""
    if jac is not None:
        return lambda t, y: jac(_t_tensor(t, y), y)
    aux, evaluate = Problem.from_torch(f), Jacobian()   # aux.stats absorbs njac; the adjoint counts its own
    return lambda t, y: evaluate(aux, t, y)


def interpolating_problem(dense: DenseState, vjp, jac_fwd: Optional[Callable], with_quad: bool,
                          rtol: float, atol: float, quad_control: bool = False) -> Problem:
    """The Problem for a(s): f = Jᵀa via VJP, quad = (∂f/∂θ)ᵀa, jac = Jᵀ (per row).

    The quad is linear in a, so its derivative along v (``quad_jac``) is the quad of v.
    """

    def f(s: float, a):
        return vjp.state(-s, dense(-s), a)

    def fq(s: float, a):
        return vjp.both(-s, dense(-s), a)

    def quad(s: float, a):
        return vjp.param(-s, dense(-s), a)

    def jac(s: float, a):
        return jac_fwd(-s, dense(-s)).transpose(-1, -2)

    return Problem(f, jac=jac if jac_fwd is not None else None, fq=fq if with_quad else None,
                   quad=quad if with_quad else None, rtol=rtol, atol=atol, quad_control=quad_control,
                   quad_jac=(lambda s, a, v: quad(s, v)) if with_quad else None)


def backsolve_problem(n: int, vjp, jac_fwd: Optional[Callable], with_quad: bool,
                      rtol: float, atol: float, quad_control: bool = False) -> Problem:
    """The Problem for z = [y, a] (last dim 2n) in reversed time: dz/ds = [-f, Jᵀa].

    Its Jacobian for stiff solvers is block diagonal ``[[-J, 0], [0, Jᵀ]]``: the coupling block
    ∂(Jᵀa)/∂y needs second derivatives and is dropped, so Newton converges more slowly and
    Rodas (not a W-method) loses order. Backsolve is kept for comparison, not for stiff use.
    The quad's derivative along v (``quad_jac``) drops the same second derivatives: (∂f/∂θ)ᵀ v_a.
    """

    def f(s: float, z):
        fy, va = vjp.f_and_state(-s, z[..., :n], z[..., n:])
        return torch.cat([fy.neg(), va], dim=-1)

    def fq(s: float, z):
        fy, va, vp = vjp.f_and_both(-s, z[..., :n], z[..., n:])
        return torch.cat([fy.neg(), va], dim=-1), vp

    def quad(s: float, z):
        return vjp.param(-s, z[..., :n], z[..., n:])

    def jac(s: float, z):
        J = jac_fwd(-s, z[..., :n])
        out = J.new_zeros(*J.shape[:-2], 2 * n, 2 * n)
        out[..., :n, :n] = -J
        out[..., n:, n:] = J.transpose(-1, -2)
        return out

    def quad_jac(s: float, z, v):
        return vjp.param(-s, z[..., :n], v[..., n:])

    return Problem(f, jac=jac if jac_fwd is not None else None, fq=fq if with_quad else None,
                   quad=quad if with_quad else None, rtol=rtol, atol=atol, quad_control=quad_control,
                   quad_jac=quad_jac if with_quad else None)
