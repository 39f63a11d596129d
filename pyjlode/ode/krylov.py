"""Matrix-free solves of ``W x = b``, ``W = I - gdt J``: batched GMRES with a diagonal preconditioner.

``linsolve="krylov"`` replaces the per-row LU of the stiff steppers. Each row of a batch is its own
system (block-diagonal J), so GMRES runs on all rows at once with per-row inner products, and the
Jacobian enters only through products ``J v`` (:class:`JacobianOperator`): for a field with a cheap
structured Jacobian (the GRU-ODE) that is one or two matmuls, and the B·H³ Jacobian and the B·H³/3 LU
are never formed. The preconditioner is ``diag(W)`` (Jacobi): on the GRU-ODE's adjoint at any stiffness
(gamma dt / tau from 0.3 to 300) it brings GMRES to 1e-3 in 3 to 8 iterations, where a batch-shared LU
of W at the batch-mean Jacobian needs 12-17 (the rows' gates differ, and so do W's diagonals).

Convergence is measured where the steppers measure it: the left-preconditioned residual
``diag(W)^-1 (b - W x)`` (about the error of x when diag(W) dominates) in the RMS norm scaled by
``atol + rtol |y|``. A solve stops at ``max(LIN_ATOL, forcing ||b~||, floor)`` per row; one that does
not get there in MAX_ITER iterations raises :class:`LinearSolveFailure`: never an unconverged x.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import SolverError

__all__ = ["JacobianOperator", "DenseOperator", "LinearSolveFailure", "KrylovW", "gmres"]

LIN_ATOL = 1e-3       # scaled-norm error target: a tenth of Newton's KAPPA, a thousandth of the step tolerance
MAX_ITER = 40         # GMRES iterations (no restart); 3-8 suffice on the GRU-ODE at any stiffness
MAX_AMP = 1e2         # 1/min|R_ii| above this: W is far from its diagonal, the residual no longer bounds the error
FLOOR = 1e3           # a residual within FLOOR * eps of ||b~|| is at the dtype's rounding level: converged


class LinearSolveFailure(SolverError):
    """GMRES did not reach its tolerance (``linsolve="krylov"``); the solve stops instead of
    returning an unconverged correction."""

    def _hint(self) -> str:
        return "use linsolve='dense' (the solver name without ':krylov'), or loosen the tolerances"


class JacobianOperator:
    """A per-row Jacobian given by its action; ``problem.jac`` may return one instead of a tensor.

    Subclasses define ``mv(v)`` (J v), ``rmv(v)`` (Jᵀ v), ``diagonal()`` and ``dense()``, all per row
    for v shaped like y. ``transpose(-1, -2)`` / ``mT`` swap mv and rmv, so code written for tensors
    (the adjoint's ``jac = J.transpose(-1, -2)``) works unchanged.
    """

    def mv(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def rmv(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def diagonal(self) -> Tensor:
        raise NotImplementedError

    def dense(self) -> Tensor:
        raise NotImplementedError

    def transpose(self, d0: int = -2, d1: int = -1) -> "JacobianOperator":
        if {d0, d1} != {-1, -2}:
            raise ValueError("a JacobianOperator only transposes its last two dimensions")
        return _Transposed(self)

    @property
    def mT(self) -> "JacobianOperator":
        return _Transposed(self)


class _Transposed(JacobianOperator):
    def __init__(self, op: JacobianOperator):
        self.op = op

    def mv(self, v):
        return self.op.rmv(v)

    def rmv(self, v):
        return self.op.mv(v)

    def diagonal(self):
        return self.op.diagonal()

    def dense(self):
        return self.op.dense().transpose(-1, -2)

    def transpose(self, d0=-2, d1=-1):
        return self.op


class DenseOperator(JacobianOperator):
    """A stored ``(n, n)`` or ``(B, n, n)`` Jacobian as an operator (batched matrix-vector products)."""

    def __init__(self, J: Tensor):
        self.J = J

    def mv(self, v):
        return (self.J @ v.unsqueeze(-1)).squeeze(-1)

    def rmv(self, v):
        return (v.unsqueeze(-2) @ self.J).squeeze(-2)

    def diagonal(self):
        return self.J.diagonal(dim1=-2, dim2=-1)

    def dense(self):
        return self.J


class KrylovW:
    """``W = I - gdt J`` for GMRES: the operator, the Jacobi preconditioner and the error weights.

    ``weight`` s is ``1 / ((atol + rtol |y|) sqrt(n))`` at the start point, so that the 2-norm of a
    weighted vector is the steppers' scaled RMS norm. GMRES works on x~ = s x, where the weighted,
    preconditioned operator is ``S D^-1 W S^-1 x~ = D^-1 x~ - (gdt s / D) J (x~ / s)``.
    """

    __slots__ = ("op", "gdt", "inv_diag", "weight", "_c1", "_c2")

    def __init__(self, op: JacobianOperator, gdt: float, y: Tensor, rtol: float, atol: float):
        self.op, self.gdt = op, gdt
        self.inv_diag = (1.0 - gdt * op.diagonal()).reciprocal()
        n = y.shape[-1]
        self.weight = (y.detach().abs() * rtol + atol).reciprocal_().mul_(1.0 / math.sqrt(n))
        self._c1 = self.inv_diag * self.weight * gdt
        self._c2 = self.weight.reciprocal()

    def apply_weighted(self, x: Tensor) -> Tensor:
        """S D^-1 W S^-1 x."""
        return torch.addcmul(x * self.inv_diag, self._c1, self.op.mv(x * self._c2), value=-1.0)


def gmres(w: KrylovW, b: Tensor, forcing: float = 0.0) -> tuple[Tensor, int]:
    """Solve ``W x = b`` per row; returns x and the iterations used.

    GMRES (Saad & Schultz 1986) on the weighted, left-preconditioned system
    ``S D^-1 W S^-1 (S x) = S D^-1 b`` with S = diag(weight), D = diag(W), x0 = 0; Arnoldi by
    classical Gram-Schmidt done twice (one batched product per pass), Givens rotations per row.
    One host sync per iteration (all rows converged?).

    Raises:
        LinearSolveFailure: a row's residual did not reach its tolerance in MAX_ITER iterations.
    """
    shape = b.shape
    r0 = (b * w.inv_diag * w.weight).reshape(-1, shape[-1])   # (R, n): every system a row
    beta = torch.linalg.vector_norm(r0, dim=-1)
    eps, tiny = torch.finfo(b.dtype).eps, torch.finfo(b.dtype).tiny
    exact = shape[-1] <= MAX_ITER   # GMRES ends within n iterations: solve to rounding (see the module doc)
    if exact:
        tol = beta * (FLOOR * eps)
    else:
        tol = torch.clamp(beta * max(forcing, FLOOR * eps), min=LIN_ATOL)
    if not bool(beta.any()):
        return torch.zeros_like(b), 0
    R, n = r0.shape
    V, Hc, G, g = _workspace(r0)
    g.zero_()
    g[:, 0, 0] = beta
    rmin = torch.full_like(beta, math.inf)                  # smallest |R_ii| so far, per row
    active = beta > 0                                       # a zero right-hand side is solved by x = 0
    V[:, 0] = r0 / beta.clamp_min(tiny).unsqueeze(-1)
    for j in range(MAX_ITER):
        u = w.apply_weighted(V[:, j].reshape(shape)).reshape(R, n, 1)
        unorm = torch.linalg.vector_norm(u, dim=1)
        Vj = V[:, :j + 1]
        h = torch.bmm(Vj, u)
        u = torch.baddbmm(u, Vj.transpose(1, 2), h, alpha=-1.0)
        h2 = torch.bmm(Vj, u)                               # second pass: orthogonal to rounding
        u = torch.baddbmm(u, Vj.transpose(1, 2), h2, alpha=-1.0).squeeze(-1)
        h = torch.cat([h + h2, torch.linalg.vector_norm(u, dim=1, keepdim=True).unsqueeze(-1)], dim=1)
        V[:, j + 1] = u / h[:, j + 1].clamp_min(tiny)
        for i in range(j):                                  # earlier rotations on the new column
            h[:, i:i + 2] = torch.bmm(G[:, i], h[:, i:i + 2])
        hj = h[:, j:j + 2, 0]
        rho = torch.linalg.vector_norm(hj, dim=1, keepdim=True).clamp_min(tiny)
        c, sn = (hj / rho).unbind(1)
        G[:, j] = torch.stack([torch.stack([c, sn], 1), torch.stack([-sn, c], 1)], 1)
        Hc[:, :j, j] = h[:, :j, 0]
        Hc[:, j, j] = rho[:, 0]
        g[:, j:j + 2] = torch.bmm(G[:, j], g[:, j:j + 2])
        rmin = torch.where(active, torch.minimum(rmin, rho[:, 0]), rmin)
        # ||error|| <= ||A^-1|| ||residual||; 1/min|R_ii| estimates ||A^-1|| from below (it is exact
        # once the Krylov space holds A's smallest singular direction): a poor preconditioner whose
        # system is ill-conditioned must not pass for converged on a small residual
        amp = torch.clamp(rmin.reciprocal(), min=1.0)
        res = g[:, j + 1, 0].abs() * amp
        broke = h[:, j + 1, 0] <= FLOOR * eps * unorm[:, 0]
        res = res.masked_fill(broke, 0.0)                  # breakdown: x is exact
        amp = amp.masked_fill(~active | torch.tensor(exact), 1.0)
        active = active & ~broke
        done, finite, amp_max = torch.stack([(res <= tol).all(), torch.isfinite(res).all(), amp.max()]).tolist()
        if amp_max > MAX_AMP:
            raise LinearSolveFailure(f"W is ill-conditioned relative to its diagonal (error amplification "
                                     f"{amp_max:.3g} > {MAX_AMP:g}): the Jacobi-preconditioned GMRES "
                                     "(linsolve='krylov') cannot bound its error")
        if done:
            return _combine(V, Hc, g, j + 1, w, shape), j + 1
        if not finite:
            break
    worst = float((res / tol).max())
    raise LinearSolveFailure(f"GMRES (linsolve='krylov') stopped at {worst:.3g}x its tolerance after "
                             f"{j + 1} iterations")


_WORK: dict = {}


def _workspace(r0: Tensor) -> tuple:
    """Basis, Hessenberg (upper part only ever read), rotations and rotated right-hand side, kept
    per (shape, dtype, device): allocating the 1 MB basis per solve cost a third of a matvec."""
    R, n = r0.shape
    key = (R, n, r0.dtype, r0.device)
    ws = _WORK.get(key)
    if ws is None:
        if len(_WORK) > 8:
            _WORK.clear()
        ws = _WORK[key] = (r0.new_empty(R, MAX_ITER + 1, n), r0.new_zeros(R, MAX_ITER, MAX_ITER),
                           r0.new_empty(R, MAX_ITER, 2, 2), r0.new_zeros(R, MAX_ITER + 1, 1))
    return ws


def _combine(V: Tensor, Hc: Tensor, g: Tensor, k: int, w: KrylovW, shape) -> Tensor:
    """x = S^-1 V_k y with R_k y = g_k (back substitution per row)."""
    y = torch.linalg.solve_triangular(Hc[:, :k, :k], g[:, :k], upper=True)
    return torch.bmm(y.transpose(1, 2), V[:, :k]).reshape(shape) * w._c2
