"""Torch side of the julia backend: validation, the autograd Function, warm-up.

Served through :mod:`pyjlode.backends.julia` (see its docstring for the data layout and the
threading rules); nothing here starts Julia before a solve is requested.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _julia_layout as _io
from . import _julia_runtime as _rt
from ._julia_names import canonical_solver, check_sensealg, is_stiff


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


def make_config(*, dt, tau, reset_after, solver, backward_solver, sensealg, rtol, atol,
                backward_rtol=None, backward_atol=None, device=torch.device("cpu")) -> SolveConfig:
    """Validate the settings of :func:`gruode_solve` (one-line ValueErrors) without starting Julia.

    ``sensealg=None`` picks the backend's default ("gauss").
    """
    fwd = canonical_solver(solver)
    bwd = fwd if backward_solver is None else canonical_solver(backward_solver)
    if _io.julia_device(torch.device(device)).type == "cuda" and (is_stiff(fwd) or is_stiff(bwd)):
        raise ValueError(f"stiff solvers need the CPU's sparse analytic Jacobian; with {_rt.CUDA_ENV}=1 "
                         "use an explicit solver for CUDA tensors, or unset it to solve them on the CPU")
    rtol, atol = _positive("rtol", rtol), _positive("atol", atol)
    return SolveConfig(
        dt=_positive("dt", dt), tau=_positive("tau", tau), reset_after=bool(reset_after),
        solver=fwd, backward_solver=bwd, sensealg=check_sensealg(sensealg, bwd), rtol=rtol, atol=atol,
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
    """h1 = Φ(h0; U, drive, b_hn) over one token, forward and adjoint in Julia.

    Julia works on detached copies or views on :func:`_julia_layout.julia_device`; results come
    back to the inputs' device.
    """

    @staticmethod
    def forward(ctx, cfg: SolveConfig, stats, h0, U, drive, b_hn):
        keep_dense = any(ctx.needs_input_grad[2:])      # the adjoint needs the dense solution
        where = _io.julia_device(h0.device)
        h0_, U_, drive_, bhn_ = (_io.to_host(t, where) for t in (h0, U, drive, b_hn))
        h1 = torch.empty_like(h0_)
        _io.sync(h0.device)
        fwd = _rt.jl_call("forward!", _io.to_julia(h1), _io.to_julia(h0_), _io.to_julia(U_),
                          _io.to_julia(drive_), _io.to_julia(bhn_), dt=cfg.dt, tau=cfg.tau,
                          reset_after=cfg.reset_after, solver=cfg.solver, rtol=cfg.rtol, atol=cfg.atol,
                          dense=keep_dense)
        _record_stats(stats, fwd)
        ctx.cfg, ctx.fwd = cfg, (fwd if keep_dense else None)
        ctx.param_shapes = (U.shape, drive.shape, None if b_hn is None else b_hn.shape)
        return h1.to(h0.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_h1):
        # ctx.fwd (the dense Julia solution) lives as long as the graph: freed with it, kept
        # under retain_graph=True.
        cfg, device = ctx.cfg, g_h1.device
        where = _io.julia_device(device)
        g_h1_ = _io.to_host(g_h1, where)
        like = dict(dtype=g_h1.dtype, device=where)
        U_shape, drive_shape, bhn_shape = ctx.param_shapes
        gh0, gU = torch.empty_like(g_h1_), torch.empty(U_shape, **like)
        gdrive = torch.empty(drive_shape, **like)
        gbhn = None if bhn_shape is None or not ctx.needs_input_grad[5] else torch.empty(bhn_shape, **like)
        _io.sync(device)
        _rt.jl_call("backward!", _io.to_julia(gh0), _io.to_julia(gU), _io.to_julia(gdrive),
                    _io.to_julia(gbhn), ctx.fwd, _io.to_julia(g_h1_), solver=cfg.backward_solver,
                    sensealg=cfg.sensealg, rtol=cfg.backward_rtol, atol=cfg.backward_atol)
        need = ctx.needs_input_grad
        grads = (gh0 if need[2] else None, gU if need[3] else None, gdrive if need[4] else None, gbhn)
        return (None, None, *(None if g is None else g.to(device) for g in grads))


def gruode_solve(h0: Tensor, U: Tensor, drive: Tensor, b_hn: Tensor | None = None, *,
                 dt: float = 1.0, tau: float = 1.0, reset_after: bool = False, solver: str = "Tsit5",
                 backward_solver: str | None = None, sensealg: str | None = None,
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
        sensealg: "gauss" (default), "quadrature", "interpolating" or "backsolve" (SciML's adjoints
            of those names; with a stiff backward solver use "gauss" or "quadrature").
        rtol, atol, backward_rtol, backward_atol: tolerances (backward ones default to forward's).
        stats: optional dict; forward nfe/naccept/nreject/njac/solves are added to it.

    Returns:
        h1: (B, H), the state at dt.

    Raises:
        ValueError: bad shapes, dtypes, names or settings (before Julia starts).
        BackendUnavailable: juliacall, Julia or the Julia packages are missing.
        SolverError: the forward solve failed here, or the adjoint solve failed in backward().
    """
    if drive.dim() == 1 and h0.dim() == 2:
        drive = drive.expand(h0.shape[0], -1)
    _check_tensors(h0, U, drive, b_hn)
    cfg = make_config(dt=dt, tau=tau, reset_after=reset_after, solver=solver,
                      backward_solver=backward_solver, sensealg=sensealg, rtol=rtol, atol=atol,
                      backward_rtol=backward_rtol, backward_atol=backward_atol, device=h0.device)
    _rt.load()
    return _GRUODESolve.apply(cfg, stats, h0, U, drive, b_hn)


# ---------------------------------------------------------------------------------- warm-up
def warmup(*, dtype=torch.float32, device="cpu", solver: str = "Tsit5", backward_solver: str | None = None,
           sensealg: str | None = None, reset_after: bool = False, rtol: float = 1e-3, atol: float = 1e-5,
           dt: float = 1.0, tau: float = 1.0) -> float:
    """Run one tiny forward and backward solve with these settings, so Julia compiles their code now.

    Julia compiles each combination of dtype, solvers, adjoint and reset variant on its first call;
    what the package's precompile workload does not cover would otherwise be compiled inside the
    first training step. Call it before a training clock starts.

    Returns:
        Seconds spent.
    """
    start = time.perf_counter()
    g = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return (0.1 * torch.randn(*shape, generator=g, dtype=dtype)).to(device).requires_grad_()

    B, H = 2, 3
    h0, U, drive = leaf(B, H), leaf(3 * H, H), leaf(B, 3 * H)
    b_hn = leaf(H) if reset_after else None
    with torch.enable_grad():
        h1 = gruode_solve(h0, U, drive, b_hn, dt=dt, tau=tau, reset_after=reset_after, solver=solver,
                          backward_solver=backward_solver, sensealg=sensealg, rtol=rtol, atol=atol)
        h1.sum().backward()
    return time.perf_counter() - start
