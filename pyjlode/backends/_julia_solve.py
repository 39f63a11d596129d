"""Torch side of the julia backend: layout views, validation, the autograd Function, odeint.

Served through :mod:`pyjlode.backends.julia` (see its docstring for the data layout and the
threading rules); nothing here starts Julia before a solve is requested.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _julia_runtime as _rt
from .julia import SENSEALGS, STIFF_SOLVERS, canonical_solver

# SciML's Interpolating/Backsolve adjoints carry the parameter integral in the ODE state, so a
# stiff reverse solver would factor (HB + p)² matrices; Gauss/Quadrature keep it out.
_STATE_CARRYING = frozenset({"interpolating", "backsolve"})


# ---------------------------------------------------------------------------------- layout
def to_julia_layout(t: Tensor) -> np.ndarray:
    """Zero-copy numpy view of a CPU tensor with its dimensions reversed.

    A C-contiguous torch ``(B, H)`` tensor becomes an F-contiguous ``(H, B)`` array over the same
    memory, which juliacall hands to Julia as a ``PyArray`` with fast linear indexing.
    """
    if t.device.type != "cpu":
        raise ValueError(f"to_julia_layout needs a CPU tensor, got one on {t.device}")
    return t.detach().numpy().T


def from_julia_layout(a: np.ndarray) -> Tensor:
    """The inverse of :func:`to_julia_layout`: Julia ``(H, B)`` memory as a torch ``(B, H)`` view."""
    return torch.from_numpy(np.asarray(a).T)


def _to_julia(t: Tensor | None):
    if t is None:
        return None
    return _rt.from_dlpack(t) if t.device.type == "cuda" else to_julia_layout(t)


def _sync_torch(device: torch.device) -> None:
    # Julia works on its own CUDA stream: torch's pending writes must land first.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class SolveConfig:
    """The non-tensor settings of one token solve (validated, canonical spellings)."""

    dt: float
    tau: float
    reset_after: bool
    solver: str
    backward_solver: str
    sensealg: str
    rtol: float
    atol: float
    backward_rtol: float
    backward_atol: float


def _positive(name: str, value) -> float:
    if isinstance(value, Tensor):
        if value.requires_grad or value.numel() != 1:
            raise ValueError(f"{name} must be a positive number on the julia backend (no learned or "
                             f"per-unit {name}); use backend='torch'")
        value = value.item()
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def _check_tensors(h0: Tensor, U: Tensor, drive: Tensor, b_hn: Tensor | None) -> None:
    if h0.dim() != 2:
        raise ValueError(f"h0 must have shape (B, H), got {tuple(h0.shape)}")
    B, H = h0.shape
    shapes = {"U": (U, (3 * H, H)), "drive": (drive, (B, 3 * H)), "b_hn": (b_hn, (H,))}
    for name, (t, shape) in shapes.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for h0 of shape {(B, H)}, got {tuple(t.shape)}")
    for name, (t, _) in shapes.items():
        if t is not None and (t.dtype != h0.dtype or t.device != h0.device):
            raise ValueError(f"{name} must match h0's dtype and device ({h0.dtype}, {h0.device}), "
                             f"got ({t.dtype}, {t.device})")
    if h0.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the julia backend solves in float32 or float64, got {h0.dtype}")
    if h0.device.type not in ("cpu", "cuda"):
        raise ValueError(f"the julia backend takes CPU or CUDA tensors, got {h0.device}")


def _check_sensealg(sensealg: str, backward_solver: str) -> str:
    key = str(sensealg).lower()
    if key not in SENSEALGS:
        raise ValueError(f"unknown sensealg {sensealg!r} for the julia backend; choose one of: "
                         f"{', '.join(SENSEALGS)}")
    if key in _STATE_CARRYING and backward_solver in STIFF_SOLVERS:
        raise ValueError(f"sensealg={key!r} with the stiff backward solver {backward_solver} makes SciML "
                         f"factor Jacobians over all parameters; use sensealg='gauss' (or 'quadrature')")
    return key


def make_config(*, dt, tau, reset_after, solver, backward_solver, sensealg, rtol, atol,
                backward_rtol=None, backward_atol=None, device=torch.device("cpu")) -> SolveConfig:
    """Validate the settings of :func:`gruode_solve` (one-line ValueErrors) without starting Julia."""
    fwd = canonical_solver(solver)
    bwd = fwd if backward_solver is None else canonical_solver(backward_solver)
    if torch.device(device).type == "cuda" and {fwd, bwd} & STIFF_SOLVERS:
        raise ValueError("stiff solvers on the julia backend need the CPU's sparse analytic Jacobian; "
                         "use an explicit solver for CUDA tensors or move them to the CPU")
    rtol, atol = _positive("rtol", rtol), _positive("atol", atol)
    return SolveConfig(
        dt=_positive("dt", dt), tau=_positive("tau", tau), reset_after=bool(reset_after),
        solver=fwd, backward_solver=bwd, sensealg=_check_sensealg(sensealg, bwd), rtol=rtol, atol=atol,
        backward_rtol=rtol if backward_rtol is None else _positive("backward_rtol", backward_rtol),
        backward_atol=atol if backward_atol is None else _positive("backward_atol", backward_atol))


# ---------------------------------------------------------------------------------- autograd
def _record_stats(stats: dict | None, fwd) -> None:
    if stats is None:
        return
    nfe, naccept, nreject, njac = _rt.jl_call("forward_stats", fwd)
    for key, value in (("nfe_forward", nfe), ("naccept", naccept), ("nreject", nreject),
                       ("njac", njac), ("solves", 1)):
        stats[key] = stats.get(key, 0) + int(value)


class _GRUODESolve(torch.autograd.Function):
    """h1 = Φ(h0; U, drive, b_hn) over one token, forward and adjoint in Julia."""

    @staticmethod
    def forward(ctx, cfg: SolveConfig, stats, h0, U, drive, b_hn):
        keep_dense = any(ctx.needs_input_grad[2:])      # the adjoint needs the dense solution
        h1 = torch.empty_like(h0)
        _sync_torch(h0.device)
        fwd = _rt.jl_call("forward!", _to_julia(h1), _to_julia(h0), _to_julia(U), _to_julia(drive),
                          _to_julia(b_hn), dt=cfg.dt, tau=cfg.tau, reset_after=cfg.reset_after,
                          solver=cfg.solver, rtol=cfg.rtol, atol=cfg.atol, dense=keep_dense)
        _record_stats(stats, fwd)
        ctx.cfg, ctx.fwd = cfg, (fwd if keep_dense else None)
        ctx.param_shapes = (U.shape, drive.shape, None if b_hn is None else b_hn.shape)
        return h1

    @staticmethod
    @once_differentiable
    def backward(ctx, g_h1):
        # ctx.fwd (the dense Julia solution) lives as long as the graph: freed with it, kept
        # under retain_graph=True.
        cfg, g_h1 = ctx.cfg, g_h1.contiguous()
        like = dict(dtype=g_h1.dtype, device=g_h1.device)
        U_shape, drive_shape, bhn_shape = ctx.param_shapes
        gh0, gU = torch.empty_like(g_h1), torch.empty(U_shape, **like)
        gdrive = torch.empty(drive_shape, **like)
        gbhn = None if bhn_shape is None or not ctx.needs_input_grad[5] else torch.empty(bhn_shape, **like)
        _sync_torch(g_h1.device)
        _rt.jl_call("backward!", _to_julia(gh0), _to_julia(gU), _to_julia(gdrive), _to_julia(gbhn),
                    ctx.fwd, _to_julia(g_h1), solver=cfg.backward_solver, sensealg=cfg.sensealg,
                    rtol=cfg.backward_rtol, atol=cfg.backward_atol)
        need = ctx.needs_input_grad
        return (None, None, gh0 if need[2] else None, gU if need[3] else None,
                gdrive if need[4] else None, gbhn)


def gruode_solve(h0: Tensor, U: Tensor, drive: Tensor, b_hn: Tensor | None = None, *,
                 dt: float = 1.0, tau: float = 1.0, reset_after: bool = False, solver: str = "Tsit5",
                 backward_solver: str | None = None, sensealg: str = "interpolating",
                 rtol: float = 1e-3, atol: float = 1e-5, backward_rtol: float | None = None,
                 backward_atol: float | None = None, stats: dict | None = None) -> Tensor:
    """Evolve the GRU-ODE hidden state over one token interval [0, dt] in Julia.

    dh/dt = (1 - z) ⊙ (g - h) / tau with r = σ(c_r + U_r h), z = σ(c_z + U_z h) and
    g = tanh(c_h + U_h (r ⊙ h)) (reset_after=False) or tanh(c_h + r ⊙ (U_h h + b_hn)) (True).
    Differentiable with respect to h0, U, drive and b_hn through SciMLSensitivity's adjoint.

    Args:
        h0: (B, H) initial state. U: (3H, H), rows [U_r; U_z; U_h]. drive: (B, 3H) or (3H,),
            columns [c_r, c_z, c_h]. b_hn: (H,) or None; with reset_after=False it is added to c_h.
        dt, tau: interval length and time constant (positive numbers).
        solver, backward_solver: registry names (backward defaults to solver).
        sensealg: "interpolating", "backsolve", "quadrature" or "gauss" (SciML's adjoints of those
            names; with a stiff backward solver use "gauss" or "quadrature").
        rtol, atol, backward_rtol, backward_atol: tolerances (backward ones default to forward's).
        stats: optional dict; forward nfe/naccept/nreject/njac/solves are added to it.

    Returns:
        h1: (B, H), the state at dt.

    Raises:
        ValueError: bad shapes, dtypes, names or settings (before Julia starts).
        BackendUnavailable: juliacall, Julia or the Julia packages are missing.
    """
    if drive.dim() == 1 and h0.dim() == 2:
        drive = drive.expand(h0.shape[0], -1)
    _check_tensors(h0, U, drive, b_hn)
    cfg = make_config(dt=dt, tau=tau, reset_after=reset_after, solver=solver,
                      backward_solver=backward_solver, sensealg=sensealg, rtol=rtol, atol=atol,
                      backward_rtol=backward_rtol, backward_atol=backward_atol, device=h0.device)
    _rt.load()
    contiguous = [None if t is None else t.contiguous() for t in (h0, U, drive, b_hn)]
    return _GRUODESolve.apply(cfg, stats, *contiguous)


# ---------------------------------------------------------------------------------- odeint
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
                         sensealg: str = "interpolating", rtol: float = 1e-6, atol: float = 1e-8,
                         backward_rtol: float | None = None, backward_atol: float | None = None,
                         stats: dict | None = None) -> Tensor:
    """``odeint_adjoint`` for a GRU-ODE field, solved in Julia: ys of shape (len(t), *y0.shape).

    One Julia solve per output interval; torch autograd chains their adjoints, so losses at every
    output time contribute, as in the native ``odeint_adjoint``.

    Args:
        field: a GRU-ODE vector field (pyjlode's GRUODEField, anything with ``julia_terms()``, or
            a :class:`GRUODETerms`).
        y0: (B, H) or (H,) initial state. t: strictly increasing times (list or 1-D tensor).
        The rest: as :func:`gruode_solve`.
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
