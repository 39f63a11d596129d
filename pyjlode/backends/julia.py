"""The Julia engine: GRU-ODE solves and adjoints in OrdinaryDiffEq v7 + SciMLSensitivity.

Importing this module imports neither juliacall nor torch, so a launcher can call
:func:`preload` (juliacall first, as PythonCall asks) before torch is loaded; Julia starts on
:func:`check_available` or the first solve. The torch side lives in ``_julia_solve`` and its
names are served from here lazily.

Tensors cross the boundary without copies: a CPU tensor becomes a numpy view with its
dimensions reversed, which Julia (column-major) reads as the same memory in the same element
order (torch ``(B, H)`` is Julia ``(H, B)``; torch's ``U`` ``(3H, H)`` is Julia's ``Uᵀ``
``(H, 3H)``). CUDA tensors go through DLPack, which reverses dimensions the same way. Outputs
are allocated by torch and written by Julia in place; every Julia call runs on the main thread.

Public entry points:
    gruode_solve(h0, U, drive, b_hn=None, *, dt, tau, reset_after, solver, backward_solver,
                 sensealg, rtol, atol, backward_rtol, backward_atol, stats) -> h1 (B, H)
    julia_odeint_adjoint(field, y0, t, *, solver, backward_solver, sensealg, rtol, atol,
                         backward_rtol, backward_atol, stats) -> ys (len(t), *y0.shape)
    check_available(), preload(), canonical_solver(name), to_julia_layout(t), from_julia_layout(a)
"""
from __future__ import annotations

from . import _julia_runtime as _rt
from ._julia_runtime import preload

# The native registry's names (pyjlode.ode.methods.SOLVERS) and julia/src/solvers.jl's table.
SOLVER_NAMES = ("Euler", "RK4", "Tsit5", "DP5", "Rosenbrock23", "Rodas4", "Rodas5P",
                "TRBDF2", "KenCarp4", "Kvaerno5")
SOLVER_ALIASES = {"dopri5": "DP5"}
STIFF_SOLVERS = frozenset({"Rosenbrock23", "Rodas4", "Rodas5P", "TRBDF2", "KenCarp4", "Kvaerno5"})
SENSEALGS = ("interpolating", "backsolve", "quadrature", "gauss")
_LOOKUP = {**{n.lower(): n for n in SOLVER_NAMES}, **SOLVER_ALIASES}

# Names implemented with torch in _julia_solve, imported on first access (PEP 562).
_LAZY = ("GRUODETerms", "SolveConfig", "from_julia_layout", "gruode_solve", "gruode_terms",
         "julia_odeint_adjoint", "make_config", "to_julia_layout")


def canonical_solver(name: str) -> str:
    """The registry spelling of ``name`` (case-insensitive; ``dopri5`` is ``DP5``).

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    key = str(name).lower()
    if key not in _LOOKUP:
        raise ValueError(f"unknown solver {name!r}; choose one of: {', '.join(SOLVER_NAMES)}")
    return _LOOKUP[key]


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
        from . import _julia_solve

        return getattr(_julia_solve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SENSEALGS", "SOLVER_ALIASES", "SOLVER_NAMES", "STIFF_SOLVERS", "canonical_solver",
           "check_available", "preload", *_LAZY]
