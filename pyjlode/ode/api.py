"""Public entry points: solve() and odeint(), which takes torchdiffeq's spelling."""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import InputError
from .loop import integrate
from .methods import get_method
from .problem import Problem
from .solution import Solution

_NORMS = ("rms", "rows")


def _check_times(t) -> list[float]:
    if isinstance(t, Tensor):
        if t.dim() != 1:
            raise InputError(f"t must be a 1-D tensor of output times, got shape {tuple(t.shape)}")
        ts = [float(v) for v in t.detach().cpu().double().tolist()]
    else:
        ts = [float(v) for v in t]
    if not ts:
        raise InputError("t is empty: pass at least the initial time, e.g. t=[0.0, 1.0]")
    if not all(math.isfinite(v) for v in ts):
        raise InputError("t contains NaN or inf: pass finite output times")
    if len(ts) > 1:
        steps = [b - a for a, b in zip(ts, ts[1:])]
        if not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
            raise InputError("t must be strictly increasing or strictly decreasing")
    return ts




def _check_inputs(method, y0, rtol, atol, dt, adaptive, norm, max_steps, rtol_name="rtol"):
    if not isinstance(y0, Tensor) or not y0.is_floating_point():
        raise InputError("y0 must be a floating-point torch.Tensor (float32 or float64)")
    if method.stiff and y0.dim() not in (1, 2):
        raise InputError(f"{method.name} needs y0 of shape (n,) or (B, n), got {tuple(y0.shape)}")
    if not (rtol >= 0 and atol >= 0 and rtol + atol > 0):
        raise InputError(f"tolerances must be non-negative and not both zero, got {rtol_name}={rtol}, atol={atol}")
    unit = torch.finfo(y0.dtype).eps / 2
    if 0 < rtol < unit:   # below the largest relative rounding error: no step can meet it, every solver grinds
        dtype = str(y0.dtype).removeprefix("torch.")
        raise InputError(f"{rtol_name}={rtol:g} is below {dtype}'s unit roundoff {unit:.2g}, so no solver can "
                         f"meet it: use {rtol_name} >= {unit:.2g} (1e-6 or looser in practice)"
                         + (" or float64 states" if dtype != "float64" else ""))
    if dt is not None and not (math.isfinite(dt) and dt != 0):
        raise InputError(f"dt must be a finite nonzero step size, got {dt}")
    if dt is None and not (adaptive and method.adaptive):
        why = "is a fixed-step solver" if not method.adaptive else "with adaptive=False needs a step"
        raise InputError(f"{method.name} {why}: pass dt=..., or use an adaptive solver such as Tsit5")
    if norm not in _NORMS:
        raise InputError(f"unknown norm {norm!r}; choose one of: {', '.join(_NORMS)}")
    if max_steps < 1:
        raise InputError(f"max_steps must be positive, got {max_steps}")


def solve(f: Callable, y0: Tensor, t: Union[Tensor, Sequence[float]], *, solver: str = "Tsit5",
          rtol: float = 1e-6, atol: float = 1e-8, dt: Optional[float] = None, adaptive: bool = True,
          max_steps: int = 100_000, jac: Optional[Callable] = None, norm: str = "rms") -> Solution:
    """Solve ``dy/dt = f(t, y)`` and return the states at the output times ``t``.

    Args:
        f: vector field ``f(t, y) -> dy/dt``; t arrives as a 0-d tensor of y's dtype and device.
        y0: initial state, ``(n,)`` for one system or ``(B, n)`` for B independent systems
            sharing f (explicit solvers accept any shape).
        t: 1-D output times, strictly increasing or decreasing; ``t[0]`` is the initial time.
        solver: a name in ``SOLVERS`` (case-insensitive; "dopri5" is DP5).
        rtol, atol: relative and absolute tolerances of the scaled RMS error norm.
        dt: adaptive: the first step (warm start); fixed-step (``adaptive=False`` or a
            solver without an error estimate): the step size.
        adaptive: use error control; False takes fixed steps of size dt.
        max_steps: bound on attempted steps.
        jac: optional analytic Jacobian ``jac(t, y) -> (n, n)`` or ``(B, n, n)`` (stiff solvers).
        norm: ``"rms"`` over all elements, or ``"rows"``: every batch row meets the tolerance.

    Returns:
        :class:`~pyjlode.ode.solution.Solution` with ``.ts``, ``.ys``, ``.stats`` and dense output.

    Raises:
        InputError: bad input, including an rtol below the unit roundoff of y0's dtype (one line
            naming the problem and the fix; also a ValueError).
        SolverError: the integration failed (see ``pyjlode.ode.errors``).
    """
    method = get_method(solver)
    ts = _check_times(t)
    _check_inputs(method, y0, rtol, atol, dt, adaptive, norm, max_steps)
    problem = Problem.from_torch(f, jac=jac, rtol=float(rtol), atol=float(atol))
    return integrate(problem, method, y0, ts, dt0=dt, adaptive=adaptive, max_steps=max_steps, norm=norm)


# torchdiffeq's options that have a counterpart here, by solve()'s name for them
_TORCHDIFFEQ_OPTIONS = {"first_step": "dt", "step_size": "dt", "max_num_steps": "max_steps"}


def odeint(func: Callable, y0, t: Union[Tensor, Sequence[float]], *, rtol: float = 1e-7, atol: float = 1e-9,
           method: Optional[str] = None, options: Optional[dict] = None, **kwargs):
    """The states at ``t`` (``len(t), *y0.shape``), called as ``torchdiffeq.odeint`` is.

    torchdiffeq's spelling works unchanged: ``method=`` a solver name ("dopri5", the default, "rk4",
    "euler", "tsit5", or any name in ``SOLVERS``), ``options=dict(first_step=..., step_size=...,
    max_num_steps=...)``, torchdiffeq's default tolerances, and a tuple of tensors as ``y0`` (``func``
    then takes and returns tuples, and a tuple of state histories comes back). A fixed-step method
    without ``step_size`` steps from one output time to the next, as torchdiffeq's does. Other
    keywords are :func:`solve`'s (``solver=`` for ``method=``, ``jac=``, ``norm=``...).

    Raises:
        InputError: an option pyjlode has no counterpart for (torchdiffeq would only warn), or both
            ``method`` and ``solver``.
    """
    if method is not None:
        if "solver" in kwargs:
            raise InputError("pass either solver= or method=, not both")
        kwargs["solver"] = method
    kwargs.setdefault("solver", "dopri5")
    for key, value in (options or {}).items():
        if key not in _TORCHDIFFEQ_OPTIONS:
            raise InputError(f"option {key!r} has no counterpart in pyjlode; the options are: "
                             f"{', '.join(_TORCHDIFFEQ_OPTIONS)} (or solve()'s keywords)")
        kwargs[_TORCHDIFFEQ_OPTIONS[key]] = float(value) if key != "max_num_steps" else int(value)
    if isinstance(y0, (tuple, list)):
        return _odeint_tuple(func, tuple(y0), t, rtol=rtol, atol=atol, **kwargs)
    if kwargs.get("dt") is None and not get_method(kwargs["solver"]).adaptive:
        return _odeint_on_the_grid(func, y0, t, rtol=rtol, atol=atol, **kwargs)
    return solve(func, y0, t, rtol=rtol, atol=atol, **kwargs).ys


def _odeint_tuple(func: Callable, y0: tuple, t, **kwargs) -> tuple:
    """odeint over a tuple of tensors, solved as one flat state."""
    shapes = [y.shape for y in y0]
    sizes = [y.numel() for y in y0]

    def unflatten(y: Tensor) -> tuple:
        return tuple(part.reshape(*y.shape[:-1], *shape) for part, shape in zip(y.split(sizes, -1), shapes))

    def flat_func(t_, y):
        return torch.cat([d.reshape(-1) for d in func(t_, unflatten(y))])

    ys = odeint(flat_func, torch.cat([y.reshape(-1) for y in y0]), t, **kwargs)
    return unflatten(ys)


def _odeint_on_the_grid(func: Callable, y0: Tensor, t, **kwargs) -> Tensor:
    """A fixed-step method without a step size: one step from each output time to the next."""
    ts = _check_times(t)
    ys, y = [y0], y0
    for a, b in zip(ts, ts[1:]):
        y = solve(func, y, [a, b], dt=b - a, **kwargs).ys[-1]
        ys.append(y)
    return torch.stack(ys)
