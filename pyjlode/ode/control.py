"""Step-size control: the scaled error norm, OrdinaryDiffEq's PI controller, Hairer's initial step."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .errors import NonFiniteState


def _scaled_norm(x: Tensor, scale: Tensor, norm: str) -> Tensor:
    r = x / scale
    if norm == "rows" and r.dim() > 1:
        # Worst row: each of the B independent systems meets the tolerance by itself.
        return r.square().mean(dim=-1).sqrt().max()
    return torch.linalg.vector_norm(r) / math.sqrt(r.numel())


def error_ratio(err: Tensor, y0: Tensor, y1: Tensor, rtol: float, atol: float, norm: str = "rms") -> float:
    """Scaled error ``RMS(err / (atol + rtol * max(|y0|, |y1|)))``; a step is accepted when <= 1.

    Args:
        err: local error estimate, shaped like y.
        y0, y1: solution before and after the step.
        rtol, atol: tolerances.
        norm: ``"rms"`` over all elements, or ``"rows"``: the maximum over rows of the
            per-row RMS (for batched ``(B, n)`` states).

    Returns:
        The ratio as a Python float (the step's one host sync); NaN or inf when the
        step produced non-finite values.
    """
    if err.requires_grad or y1.requires_grad or y0.requires_grad:
        # Step-size control is not differentiated; detach is cheaper than a no_grad block.
        err, y0, y1 = err.detach(), y0.detach(), y1.detach()
    scale = torch.maximum(y0.abs(), y1.abs()).mul_(rtol).add_(atol)
    return float(_scaled_norm(err, scale, norm))


@dataclass
class PIController:
    """OrdinaryDiffEq's PI step-size controller (``controllers.jl``), defaults included.

    ``q = EEst^beta1 / errold^beta2 / safety``, clipped to ``[1/qmax, 1/qmin]``, and the
    new step is ``dt / q``. A q inside the dead-band ``[qsteady_min, qsteady_max]`` keeps
    dt unchanged (ESDIRK steppers use 1..1.2 to avoid refactorising W). On the first
    step the growth bound is ``qmax_first`` (a heuristic first dt may be far too small).
    """

    beta1: float
    beta2: float
    safety: float = 0.9
    qmin: float = 0.2
    qmax: float = 10.0
    qmax_first: float = 10000.0
    qsteady_min: float = 1.0
    qsteady_max: float = 1.0
    qoldinit: float = 1e-4
    errold: float = field(default=1e-4, init=False)

    @classmethod
    def for_method(cls, method) -> "PIController":
        """Gains ``beta1 = 7/(10p)``, ``beta2 = 2/(5p)`` for a method of order p; its stepper's dead-band."""
        return cls(beta1=0.7 / method.order, beta2=0.4 / method.order,
                   qsteady_max=method.stepper.qsteady_max)

    def __post_init__(self):
        self.errold = self.qoldinit

    def propose(self, dt: float, err_ratio: float, first: bool = False) -> tuple[bool, float]:
        """Accept or reject a step of size dt with scaled error ``err_ratio``.

        Returns:
            ``(accept, dt_next)``: dt_next is the next step after an accept, or the
            retry step after a reject (same sign as dt).
        """
        q11 = err_ratio ** self.beta1
        if err_ratio <= 1.0:
            qmax = self.qmax_first if first else self.qmax
            q = q11 / self.errold ** self.beta2 / self.safety
            q = min(1.0 / self.qmin, max(1.0 / qmax, q))
            if self.qsteady_min <= q <= self.qsteady_max:
                q = 1.0
            self.errold = max(err_ratio, self.qoldinit)
            return True, dt / q
        return False, dt / min(1.0 / self.qmin, q11 / self.safety)


@torch.no_grad()
def initial_step(problem, t0: float, y0: Tensor, f0: Tensor, direction: float, order: int,
                 rtol: float, atol: float, dtmax: float, norm: str = "rms", solver: str = "?") -> float:
    """Hairer, Norsett & Wanner I, Sec. II.4: a first step with ``h^(order+1) max(d1, d2) = 0.01``.

    Costs one evaluation of f. Returns a signed step (``direction`` is +1 or -1).

    Raises:
        NonFiniteState: y0 or f(t0, y0) is not finite.
    """
    scale = y0.abs().mul_(rtol).add_(atol)
    d0, d1 = torch.stack([_scaled_norm(y0, scale, norm), _scaled_norm(f0, scale, norm)]).tolist()  # one sync
    if not (math.isfinite(d0) and math.isfinite(d1)):
        raise NonFiniteState("the initial state or f(t0, y0) is not finite", solver=solver, t=t0, dt=0.0,
                             cause="initial")
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, dtmax)
    f1 = problem.f_eval(t0 + direction * h0, y0 + (direction * h0) * f0)
    d2 = float(_scaled_norm(f1 - f0, scale, norm)) / h0
    if not math.isfinite(d2):
        return direction * h0  # let the loop's rejections shrink it further
    dmax = max(d1, d2)
    h1 = max(1e-6, 1e-3 * h0) if dmax <= 1e-15 else (0.01 / dmax) ** (1.0 / (order + 1))
    return direction * min(100.0 * h0, h1, dtmax)
