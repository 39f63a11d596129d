"""The Julia engine: GRU-ODE solves and adjoints in OrdinaryDiffEq v7 + SciMLSensitivity.

Importing this module imports neither juliacall nor torch, so a launcher can call
:func:`preload` (juliacall first, as PythonCall asks) before torch is loaded; Julia starts on
:func:`check_available` or the first solve. The torch-side names are served lazily from
``_julia_solve``, ``_julia_odeint`` and ``_julia_layout``, which never import this module.

Tensors cross the boundary without copies: a CPU tensor becomes a numpy view with its
dimensions reversed, which Julia (column-major) reads as the same memory in the same element
order (torch ``(B, H)`` is Julia ``(H, B)``; torch's ``U`` ``(3H, H)`` is Julia's ``Uᵀ``
``(H, 3H)``). CUDA tensors are copied through the CPU, or, with ``PYJLODE_JULIA_CUDA=1`` set
before Julia starts, shared through DLPack, which reverses dimensions the same way. Outputs
are allocated by torch and written by Julia in place; every Julia call runs on the main thread.

Public entry points:
    gruode_solve(h0, U, drive, b_hn=None, *, dt, tau, reset_after, solver, backward_solver,
                 sensealg, rtol, atol, backward_rtol, backward_atol, stats) -> h1 (B, H)
    julia_odeint_adjoint(field, y0, t, *, solver, backward_solver, sensealg, rtol, atol,
                         backward_rtol, backward_atol, stats) -> ys (len(t), *y0.shape)
    warmup(*, dtype, device, solver, backward_solver, sensealg, reset_after, rtol, atol, dt, tau)
    check_available(), preload(), canonical_solver(name), to_julia_layout(t), from_julia_layout(a)
"""
from __future__ import annotations

import importlib

from . import _julia_runtime as _rt
from ._julia_names import DEFAULT_SENSEALG, SENSEALGS, canonical_solver, solver_names
from ._julia_runtime import preload

# Names implemented with torch, imported on first access (PEP 562): name -> defining module.
_LAZY = {
    "SolveConfig": "_julia_solve", "gruode_solve": "_julia_solve", "make_config": "_julia_solve",
    "warmup": "_julia_solve",
    "GRUODETerms": "_julia_odeint", "gruode_terms": "_julia_odeint", "julia_odeint_adjoint": "_julia_odeint",
    "from_julia_layout": "_julia_layout", "to_julia_layout": "_julia_layout",
}


def check_available() -> None:
    """Start Julia and load PyJlODE, or raise BackendUnavailable (one line, with the fix).

    On machines with CUDA it also turns off torch's per-device backward threads for the calling
    (main) thread, so that backward passes reach Julia from the main thread.
    """
    _rt.load()
    import torch

    if torch.cuda.is_available():
        torch.autograd.set_multithreading_enabled(False)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"{__package__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_SENSEALG", "SENSEALGS", "canonical_solver", "check_available", "preload",
           "solver_names", *_LAZY]
