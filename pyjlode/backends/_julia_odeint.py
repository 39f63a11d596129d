"""``odeint_adjoint`` for GRU-ODE fields on the Julia engine: one Julia solve per output interval."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._julia_solve import gruode_solve


@dataclass(frozen=True)
class GRUODETerms:
    """What the Julia engine needs of a GRU-ODE vector field (see :func:`gruode_solve`)."""

    U: Tensor
    drive: Tensor
    b_hn: Tensor | None = None
    tau: float = 1.0
    reset_after: bool = False


def gruode_terms(field) -> GRUODETerms:
    """GRUODETerms of ``field``: itself, ``field.julia_terms()``, or its U/c/b_hn/tau/reset_after."""
    if isinstance(field, GRUODETerms):
        return field
    if hasattr(field, "julia_terms"):
        return field.julia_terms()
    try:
        return GRUODETerms(field.U, field.c, field.b_hn, field.tau, field.reset_after)
    except AttributeError:
        raise TypeError(f"the julia backend solves GRU-ODE fields only (U, c, b_hn, tau, reset_after); "
                        f"got {type(field).__name__}") from None


def julia_odeint_adjoint(field, y0: Tensor, t, *, solver: str = "Tsit5", backward_solver: str | None = None,
                         sensealg: str | None = None, rtol: float = 1e-6, atol: float = 1e-8,
                         backward_rtol: float | None = None, backward_atol: float | None = None,
                         stats: dict | None = None) -> Tensor:
    """``odeint_adjoint`` for a GRU-ODE field, solved in Julia: ys of shape (len(t), *y0.shape).

    One Julia solve per output interval; torch autograd chains their adjoints, so losses at every
    output time contribute, as in the native ``odeint_adjoint``.

    Args:
        field: a GRU-ODE vector field (pyjlode's GRUODEField, anything with ``julia_terms()``, or
            a :class:`GRUODETerms`).
        y0: (B, H) or (H,) initial state. t: strictly increasing times (list or 1-D tensor).
        The rest: as :func:`gruode_solve` (``sensealg=None`` is "gauss").
    """
    terms = gruode_terms(field)
    ts = [float(x) for x in (t.tolist() if isinstance(t, Tensor) else t)]
    if len(ts) < 2 or any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"t must hold at least two strictly increasing times, got {ts}")
    h = y0.unsqueeze(0) if y0.dim() == 1 else y0
    ys = [h]
    for t0, t1 in zip(ts, ts[1:]):
        h = gruode_solve(h, terms.U, terms.drive, terms.b_hn, dt=t1 - t0, tau=terms.tau,
                         reset_after=terms.reset_after, solver=solver, backward_solver=backward_solver,
                         sensealg=sensealg, rtol=rtol, atol=atol, backward_rtol=backward_rtol,
                         backward_atol=backward_atol, stats=stats)
        ys.append(h)
    out = torch.stack(ys)
    return out.squeeze(1) if y0.dim() == 1 else out
