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

    ``weight`` is ``1 / ((atol + rtol |y|) sqrt(n))`` at the start point, so that the 2-norm of a
    weighted vector is the steppers' scaled RMS norm.
    """

    __slots__ = ("op", "gdt", "inv_diag", "weight")

    def __init__(self, op: JacobianOperator, gdt: float, y: Tensor, rtol: float, atol: float):
        self.op, self.gdt = op, gdt
        self.inv_diag = (1.0 - gdt * op.diagonal()).reciprocal()
        n = y.shape[-1]
        self.weight = (y.detach().abs() * rtol + atol).reciprocal_().mul_(1.0 / math.sqrt(n))

    def apply(self, x: Tensor) -> Tensor:
        """diag(W)^-1 W x."""
        return (x - self.op.mv(x) * self.gdt) * self.inv_diag


def gmres(w: KrylovW, b: Tensor, forcing: float = 0.0) -> tuple[Tensor, int]:
    """Solve ``W x = b`` per row; returns x and the iterations used.

    GMRES (Saad & Schultz 1986) on the weighted, left-preconditioned system
    ``S D^-1 W S^-1 (S x) = S D^-1 b`` with S = diag(weight), D = diag(W), x0 = 0; Arnoldi by
    classical Gram-Schmidt done twice (one batched product per pass), Givens rotations per row.
    One host sync per iteration (all rows converged?).

    Raises:
        LinearSolveFailure: a row's residual did not reach its tolerance in MAX_ITER iterations.
    """
    s = w.weight.expand_as(b)
    r0 = b * w.inv_diag * s
    rows = r0.reshape(-1, r0.shape[-1])                     # (R, n): every system a row
    beta = torch.linalg.vector_norm(rows, dim=-1)
    eps = torch.finfo(b.dtype).eps
    tol = torch.clamp(beta * max(forcing, FLOOR * eps), min=LIN_ATOL)
    if not bool((beta > tol).any()):
        return torch.zeros_like(b), 0
    R, n = rows.shape
    tiny = torch.finfo(b.dtype).tiny
    sr = s.reshape(R, n)
    V = rows.new_empty(R, MAX_ITER + 1, n)                 # Arnoldi basis, one (k, n) block per row
    Hc = rows.new_zeros(R, MAX_ITER + 1, MAX_ITER)          # Hessenberg, rotated into R
    cs, sn = rows.new_zeros(R, MAX_ITER), rows.new_zeros(R, MAX_ITER)
    g = rows.new_zeros(R, MAX_ITER + 1)
    g[:, 0] = beta
    V[:, 0] = rows / beta.clamp_min(tiny).unsqueeze(-1)
    for j in range(MAX_ITER):
        u = (w.apply((V[:, j] / sr).reshape(b.shape)) * s).reshape(R, n, 1)
        Vj = V[:, :j + 1]
        h = torch.bmm(Vj, u)
        u = u - torch.bmm(Vj.transpose(1, 2), h)
        h2 = torch.bmm(Vj, u)                               # second pass: orthogonal to rounding
        u = (u - torch.bmm(Vj.transpose(1, 2), h2)).squeeze(-1)
        h = (h + h2).squeeze(-1)
        hn = torch.linalg.vector_norm(u, dim=-1)
        V[:, j + 1] = u / hn.clamp_min(tiny).unsqueeze(-1)
        for i in range(j):                                  # earlier rotations on the new column
            hi = cs[:, i] * h[:, i] + sn[:, i] * h[:, i + 1]
            h[:, i + 1] = cs[:, i] * h[:, i + 1] - sn[:, i] * h[:, i]
            h[:, i] = hi
        rho = torch.sqrt(h[:, j] ** 2 + hn ** 2).clamp_min(tiny)
        cs[:, j], sn[:, j] = h[:, j] / rho, hn / rho
        h[:, j] = rho
        Hc[:, :j + 1, j] = h
        g[:, j + 1] = -sn[:, j] * g[:, j]
        g[:, j] = cs[:, j] * g[:, j]
        res = g[:, j + 1].abs()
        done, finite = torch.stack([(res <= tol).all(), torch.isfinite(res).all()]).tolist()  # one sync
        if done:
            return _combine(V, Hc, g, j + 1, s, b), j + 1
        if not finite:
            break
    worst = float((res / tol).max())
    raise LinearSolveFailure(f"GMRES (linsolve='krylov') stopped at {worst:.3g}x its tolerance after "
                             f"{j + 1} iterations")


def _combine(V: Tensor, Hc: Tensor, g: Tensor, k: int, s: Tensor, b: Tensor) -> Tensor:
    """x = S^-1 V_k y with R_k y = g_k (back substitution per row)."""
    y = torch.linalg.solve_triangular(Hc[:, :k, :k], g[:, :k].unsqueeze(-1), upper=True).squeeze(-1)
    x = torch.bmm(y.unsqueeze(1), V[:, :k]).reshape(b.shape)
    return x / s
