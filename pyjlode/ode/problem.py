"""The problem an integration solves, its counters, and one step's result."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Callable, NamedTuple, Optional

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

    def __add__(self, other: "SolveStats") -> "SolveStats":
        return SolveStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __iadd__(self, other: "SolveStats") -> "SolveStats":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in asdict(self).items())


@dataclass
class Problem:
    """An ODE dy/dt = f(t, y) with its tolerances and counters.

    ``f`` receives t as a 0-d tensor of y's dtype and device (torchdiffeq
    convention); times are Python floats everywhere else. ``quad`` gives rates of
    extra quantities integrated along accepted steps but not part of the state
    (the adjoint's parameter gradients); ``fq`` optionally computes f and those
    rates together.
    """

    f: Callable
    jac: Optional[Callable] = None
    fq: Optional[Callable] = None
    quad: Optional[Callable] = None
    rtol: float = 1e-6
    atol: float = 1e-8
    stats: SolveStats = field(default_factory=SolveStats)

    @property
    def has_quad(self) -> bool:
        return self.quad is not None or self.fq is not None

    @staticmethod
    def _t(t: float, y: Tensor) -> Tensor:
        # scalar_tensor fills on the device: no host-to-device copy on CUDA.
        return torch.scalar_tensor(t, dtype=y.dtype, device=y.device)

    def f_eval(self, t: float, y: Tensor) -> Tensor:
        """f(t, y), counting one function evaluation."""
        self.stats.nfe += 1
        return self.f(self._t(t, y), y)

    def fq_eval(self, t: float, y: Tensor) -> tuple[Tensor, tuple]:
        """(f(t, y), quad rates), through ``fq`` when given; counts one evaluation."""
        self.stats.nfe += 1
        tt = self._t(t, y)
        if self.fq is not None:
            dy, q = self.fq(tt, y)
            return dy, tuple(q)
        dy = self.f(tt, y)
        return dy, tuple(self.quad(tt, y)) if self.quad is not None else ()

    def q_eval(self, t: float, y: Tensor) -> tuple:
        """The quad rates alone (not counted as a function evaluation)."""
        if self.quad is None:
            return tuple(self.fq(self._t(t, y), y)[1])
        return tuple(self.quad(self._t(t, y), y))


class StepResult(NamedTuple):
    """One attempted step from t to t + dt.

    Attributes:
        y1: solution at t + dt.
        f1: f(t + dt, y1), the next step's f0 (FSAL or computed).
        err: local error estimate shaped like y, or None without an embedded pair.
        q: quadrature increment over the step, or None when the problem has no quad.
        ok: False when an implicit solve failed; the loop then halves dt and retries.
    """

    y1: Tensor
    f1: Tensor
    err: Optional[Tensor]
    q: Optional[tuple]
    ok: bool = True
