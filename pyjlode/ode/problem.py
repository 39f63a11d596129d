"""The problem an integration solves, its counters, and lazily summed quadrature rates."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable, Optional

import torch
from torch import Tensor


@dataclass
class SolveStats:
    """Work counters of one or more solves (addable, printable)."""

    nfe: int = 0
    njac: int = 0
    nlu: int = 0
    nsolve: int = 0
    naccept: int = 0
    nreject: int = 0
    nnewton: int = 0
    nnewton_fail: int = 0
    nswitch: int = 0        # member switches of a composite (auto) method
    nstiff: int = 0         # accepted steps taken by a composite's stiff member

    # Plain attribute loops: dataclasses.fields/asdict cost tens of µs, paid per solve (per token).
    def __add__(self, other: "SolveStats") -> "SolveStats":
        return SolveStats(*[getattr(self, n) + getattr(other, n) for n in _STAT_NAMES])

    def __sub__(self, other: "SolveStats") -> "SolveStats":
        return SolveStats(*[getattr(self, n) - getattr(other, n) for n in _STAT_NAMES])

    def __iadd__(self, other: "SolveStats") -> "SolveStats":
        for n in _STAT_NAMES:
            setattr(self, n, getattr(self, n) + getattr(other, n))
        return self

    def copy(self) -> "SolveStats":
        return SolveStats(*[getattr(self, n) for n in _STAT_NAMES])

    def as_dict(self) -> dict:
        return {n: getattr(self, n) for n in _STAT_NAMES}

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.as_dict().items())


_STAT_NAMES = tuple(f.name for f in fields(SolveStats))


@dataclass
class Problem:
    """An ODE dy/dt = f(t, y) with its tolerances and counters, as the engine sees it.

    Inside the engine time is a Python float, and every callback here receives t as one:
    ``f(t, y)``, ``jac(t, y)``, ``fq(t, y)`` and ``quad(t, y)``. Fields written in torchdiffeq's
    convention (t a 0-d tensor) enter through :meth:`from_torch`, which converts at that one
    boundary. ``quad`` gives rates of extra quantities integrated along accepted steps but not
    part of the state (the adjoint's parameter gradients); ``fq`` optionally computes f and
    those rates together.

    ``quad_control=True`` puts the quad's embedded error estimate into each step's error ratio
    (see ``loop._Loop._quad_ratio``); ``quad_jac(t, y, v)``, the directional derivative of the quad
    rates along v (linear in v), is what Rosenbrock steppers need for the quad's W-transformed
    stages (a finite difference of ``quad`` stands in when it is None).
    """

    f: Callable
    jac: Optional[Callable] = None
    fq: Optional[Callable] = None
    quad: Optional[Callable] = None
    rtol: float = 1e-6
    atol: float = 1e-8
    stats: SolveStats = field(default_factory=SolveStats)
    quad_control: bool = False
    quad_jac: Optional[Callable] = None

    @classmethod
    def from_torch(cls, f: Callable, *, jac: Optional[Callable] = None, fq: Optional[Callable] = None,
                   quad: Optional[Callable] = None, **kwargs) -> "Problem":
        """A Problem over callbacks that take t as a 0-d tensor of y's dtype and device."""
        return cls(_tensor_time(f), jac=_tensor_time(jac), fq=_tensor_time(fq), quad=_tensor_time(quad),
                   **kwargs)

    @property
    def has_quad(self) -> bool:
        return self.quad is not None or self.fq is not None

    def f_eval(self, t: float, y: Tensor) -> Tensor:
        """f(t, y), counting one function evaluation."""
        self.stats.nfe += 1
        return self.f(t, y)

    def fq_eval(self, t: float, y: Tensor) -> tuple[Tensor, tuple]:
        """(f(t, y), quad rates), through ``fq`` when given; counts one evaluation."""
        self.stats.nfe += 1
        if self.fq is not None:
            dy, q = self.fq(t, y)
            return dy, tuple(q)
        dy = self.f(t, y)
        return dy, tuple(self.quad(t, y)) if self.quad is not None else ()

    def q_eval(self, t: float, y: Tensor) -> tuple:
        """The quad rates alone (not counted as a function evaluation)."""
        if self.quad is None:
            return tuple(self.fq(t, y)[1])
        return tuple(self.quad(t, y))

    def q_jvp(self, t: float, y: Tensor, v: Tensor) -> tuple:
        """∂quad/∂y (t, y) applied to v: ``quad_jac`` or a forward difference of the rates."""
        if self.quad_jac is not None:
            return tuple(self.quad_jac(t, y, v))
        scale = max(1.0, float(y.abs().max())) / max(float(v.abs().max()), 1e-300)
        delta = math.sqrt(torch.finfo(y.dtype).eps) * scale
        # (a - b) / delta with the ops OuterSum factors support too
        return tuple((a * (1 / delta)).add_(b, alpha=-1 / delta)
                     for a, b in zip(self.q_eval(t, y + v * delta), self.q_eval(t, y)))


def _tensor_time(fn: Optional[Callable]) -> Optional[Callable]:
    """``fn(t_tensor, y)`` called as ``g(t_float, y)``; None stays None."""
    if fn is None:
        return None

    def call(t: float, y: Tensor):
        # scalar_tensor fills on the device: no host-to-device copy on CUDA.
        return fn(torch.scalar_tensor(t, dtype=y.dtype, device=y.device), y)

    return call


class OuterSum:
    """A quadrature rate ``sum_k w_k L_kᵀ R_k`` (per block of rows), kept as its factors.

    The parameter cotangent of a weight matrix is such a batch-summed outer product (for
    ``y = U x``: ``aᵀ x``). A field's VJP may return one instead of the matrix: a solve then
    sums its weighted stage rates by collecting factors, and ``materialize`` pays one large
    matmul per block at the end of the solve instead of a small matmul plus a full-size add
    per stage. It supports what the steppers do with rates: ``rate * s``, ``acc.add_(rate,
    alpha=s)`` and ``a + b``; :func:`~pyjlode.ode.loop.integrate` materialises totals.

    Args:
        shape: shape of the matrix it stands for.
        blocks: ``[(row0, row1, [(w, L, R), ...]), ...]`` with L ``(K, row1 - row0)`` and
            R ``(K, shape[1])``; a block's rows are ``sum w L.T @ R``.
    """

    __slots__ = ("shape", "blocks")

    def __init__(self, shape, blocks):
        self.shape, self.blocks = tuple(shape), blocks

    @classmethod
    def of(cls, shape, *pieces) -> "OuterSum":
        """From ``(row0, row1, L, R)`` pieces, each weighted 1."""
        return cls(shape, [(r0, r1, [(1.0, L, R)]) for r0, r1, L, R in pieces])

    def __mul__(self, s: float) -> "OuterSum":
        return OuterSum(self.shape, [(r0, r1, [(w * s, L, R) for w, L, R in terms])
                                     for r0, r1, terms in self.blocks])

    __rmul__ = __mul__

    def add_(self, other: "OuterSum", alpha: float = 1.0) -> "OuterSum":
        for (_, _, terms), (_, _, more) in zip(self.blocks, other.blocks):
            terms.extend((w * alpha, L, R) for w, L, R in more)
        return self

    def __add__(self, other):
        if isinstance(other, Tensor):
            return self.materialize() + other
        return OuterSum(self.shape, [(r0, r1, terms + more)
                                     for (r0, r1, terms), (_, _, more) in zip(self.blocks, other.blocks)])

    __radd__ = __add__

    def materialize(self) -> Tensor:
        """The matrix: one ``cat`` and one matmul per block."""
        L0 = self.blocks[0][2][0][1]
        out = L0.new_empty(self.shape)
        for r0, r1, terms in self.blocks:
            L = torch.cat([L * w for w, L, _ in terms])
            R = torch.cat([R for _, _, R in terms])
            torch.mm(L.t(), R, out=out[r0:r1])
        return out


def materialize(x):
    """``x`` as a tensor (an :class:`OuterSum` is evaluated; anything else passes through)."""
    return x.materialize() if isinstance(x, OuterSum) else x
